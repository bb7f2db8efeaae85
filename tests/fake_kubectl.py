"""A stand-in for ``kubectl port-forward`` (no API server, kubelet or kubectl binary exist here).

Behaves as kubectl v1.34 does on its standard output (pkg/cmd/portforward, client-go portforward.go):
``Forwarding from 127.0.0.1:<local> -> <remote>`` once listening, ``Handling connection for <remote>`` per
connection, error text on stderr and exit 1 when the Service does not exist. Each accepted connection is
piped to ``$FAKE_KUBECTL_UPSTREAM`` (host:port: a real Prometheus), as the kubelet pipes it into the pod.
``$FAKE_KUBECTL_LOG`` receives the arguments of every start; ``$FAKE_KUBECTL_EXIT_AFTER`` = N exits after N
connections (a forward that dies when its pod restarts).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading


def pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def main() -> int:
    args = sys.argv[1:]
    with open(os.environ["FAKE_KUBECTL_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(args) + "\n")
    namespace = args[args.index("--namespace") + 1]
    target = next(a for a in args if a.startswith("svc/"))
    if target != f"svc/{os.environ.get('FAKE_KUBECTL_SERVICE', '')}":
        print(f'error: services "{target[4:]}" not found', file=sys.stderr, flush=True)
        return 1
    local, _, remote = args[-1].partition(":")
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", int(local or 0)))
    server.listen(16)
    print(f"Forwarding from 127.0.0.1:{server.getsockname()[1]} -> {remote}", flush=True)
    host, _, port = os.environ["FAKE_KUBECTL_UPSTREAM"].rpartition(":")
    budget = int(os.environ.get("FAKE_KUBECTL_EXIT_AFTER", "0")) or None
    served = 0
    del namespace
    while budget is None or served < budget:
        conn, _ = server.accept()
        print(f"Handling connection for {remote}", flush=True)
        upstream = socket.create_connection((host, int(port)))
        threading.Thread(target=pipe, args=(conn, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()
        served += 1
    threading.Event().wait(0.5)  # let the last answer through, then exit as kubectl does on lost pod
    return 0


if __name__ == "__main__":
    sys.exit(main())
