"""Start N processes of a script on this machine (PyTorch DDP ranks, as
torchrun does) and watch them: when one dies, stop the others at once.

    python tools/launch_ranks.py N SCRIPT [args]    # tools/torchrun.sh uses it

Why not torchrun on one machine: when a rank is killed (SIGKILL from the
out-of-memory killer or a scheduler), the survivors of a CPU (gloo) run
either fail in their next collective with a traceback or, with a peer that
hangs, wait out gloo's 30-minute default; torchrun then stops them and
prints a report of many lines. Here the launcher blocks in ``waitid`` on its
children, so it sees a death the moment it happens, prints one line naming
the lost rank, and stops the others (SIGTERM, which the ranks turn into a
clean exit: see ``fastsnn_mm.utils.launch.stop_on_sigterm``; SIGKILL after
``FASTSNN_STOP_GRACE`` seconds, default 10, if one does not go).

The launcher also hosts the ranks' TCPStore (as torchrun's agent does) on
a port it keeps for the whole run: by default one the OS picks (``PORT`` set:
that one). Picking a free port, releasing it and handing it on (as the
tests did, for torchrun) lets another process on the machine take it in
between; two runs on the default 29500 collide.

Several machines: torchrun (tools/torchrun.sh switches on ``NNODES``).

Exit status: 0 when every rank exits 0, else the first failed rank's (its
exit code, or 128 + the signal that killed it). A rank that exits with 2 has
said why in one line itself (``fastsnn_mm.utils.launch.fail``): the launcher
adds nothing then.
"""
import datetime
import os
import signal
import subprocess
import sys
import time

#: environment variable a rank sees when this launcher started it (its pid)
LAUNCHER_ENV = 'FASTSNN_LAUNCHER_PID'
#: exit code with which a rank reports an error it has already put in one
#: line on stderr (``fastsnn_mm.utils.launch.fail``)
SAID_IN_ONE_LINE = 2


def usage():
    print(f'usage: {sys.argv[0]} N SCRIPT [args]', file=sys.stderr)
    sys.exit(2)


def host_store(addr, port, world_size):
    """The TCPStore the ranks rendezvous through, served by this process
    (``TORCHELASTIC_USE_AGENT_STORE`` makes every rank a client of it)."""
    from torch.distributed import TCPStore
    try:
        return TCPStore(addr, port, world_size, True,
                        datetime.timedelta(seconds=600),
                        wait_for_workers=False)
    except RuntimeError as err:  # DistNetworkError: address already in use
        print(f'error: cannot serve the ranks\' store on {addr}:{port}: '
              f'{" ".join(str(err).split())}; pick another PORT, or leave '
              'PORT unset to let the system pick a free one',
              file=sys.stderr)
        sys.exit(2)


def start_ranks(n, script, args, addr, port):
    procs = []
    for rank in range(n):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank),
                   WORLD_SIZE=str(n), LOCAL_WORLD_SIZE=str(n),
                   GROUP_RANK='0', ROLE_RANK=str(rank),
                   ROLE_WORLD_SIZE=str(n), MASTER_ADDR=addr,
                   MASTER_PORT=str(port),
                   TORCHELASTIC_USE_AGENT_STORE='True',
                   **{LAUNCHER_ENV: str(os.getpid())})
        env.setdefault('OMP_NUM_THREADS', '1')  # as torchrun: N processes
        procs.append(subprocess.Popen([sys.executable, script, *args],
                                      env=env))
    return procs


def wait_any():
    """Block until a child has exited (without reaping it: ``poll`` does)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
    except ChildProcessError:
        pass


def lost_line(rank, pid, code, others, script):
    """The one line said when rank ``rank`` ended with ``code``
    (``Popen.returncode``: negative for a signal) while ``others`` ran."""
    stopping = ('stopping rank ' + ', '.join(map(str, others))
                if others else 'no other rank was running')
    if code >= 0:  # it said why itself, above
        return (f'error: rank {rank} (pid {pid}) exited with code {code} '
                f'(its error is above); {stopping}')
    name = signal.Signals(-code).name
    hint = (' (often the out-of-memory killer: see dmesg)'
            if name == 'SIGKILL' else '')
    cannot = ': the run cannot go on without it' if others else ''
    again = ('run the same command with --resume to go on from the last '
             'checkpoint' if os.path.basename(script) == 'train.py' else
             'run the same command again')
    return (f'error: rank {rank} (pid {pid}) was killed by {name}{hint}; '
            f'{stopping}{cannot}; {again}')


def stop(procs, grace):
    """SIGTERM every rank still running, SIGKILL those left after
    ``grace`` seconds; return when all have exited."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.send_signal(signal.SIGCONT)  # a stopped rank acts on it now
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def supervise(procs, grace, script):
    """Wait for the ranks; at the first that fails, say so in one line and
    stop the others. Returns the exit status."""
    while True:
        wait_any()
        codes = [p.poll() for p in procs]
        failed = [r for r, c in enumerate(codes) if c not in (None, 0)]
        if failed:
            rank = failed[0]
            code = codes[rank]
            others = [r for r, c in enumerate(codes) if c is None]
            if code != SAID_IN_ONE_LINE:
                print(lost_line(rank, procs[rank].pid, code, others, script),
                      file=sys.stderr, flush=True)
            stop(procs, grace)
            return 128 - code if code < 0 else code
        if all(c == 0 for c in codes):
            return 0


def main():
    if len(sys.argv) < 3 or not sys.argv[1].isdigit() or \
            int(sys.argv[1]) < 1:
        usage()
    n, script, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    grace = float(os.environ.get('FASTSNN_STOP_GRACE', 10))
    addr = os.environ.get('MASTER_ADDR', '127.0.0.1')
    store = host_store(addr, int(os.environ.get('PORT') or 0), n)
    procs = start_ranks(n, script, args, addr, store.port)

    def forward(signum, frame):  # a scheduler or Ctrl-C stops the launcher
        stop(procs, grace)
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = supervise(procs, grace, script)
    # every rank has exited: skip the interpreter's teardown of torch and
    # the store's threads (about a second on a busy CPU)
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(code)


if __name__ == '__main__':
    main()
