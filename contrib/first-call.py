#!/usr/bin/env python3
"""Time from spawning `wasimancer serve --headless` (the sample plugins, run from the
repository) to its first successful `tools/call add`, with an empty compile cache
and then a warm one.

    contrib/first-call.py target/release/wasimancer [RUNS]
"""
import json, os, shutil, socket, subprocess, sys, time, http.client, tempfile, statistics
BIN = os.path.abspath(sys.argv[1]); RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 5

# plugins.yml and plugins/ of the repository
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "add", "arguments": {"left": 1, "right": 2}}})
def once(cache_dir):
    port = free_port()
    env = dict(os.environ, HTTP_PORT=str(port), WASIMANCER_AUTHENTICATION_TOKEN="tok",
               WASIMANCER_CACHE_DIR=cache_dir, WASIMANCER_NO_CONTROL_SOCKET="true")
    env.pop("RUST_BACKTRACE", None)
    t0 = time.perf_counter()
    p = subprocess.Popen([BIN, "serve", "--headless"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - t0 < 30 and p.poll() is None:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("POST", "/mcp", body, {"Authorization": "Bearer tok", "Content-Type": "application/json",
                                                 "Accept": "application/json, text/event-stream"})
                r = c.getresponse(); text = r.read().decode()
                if r.status == 200 and '"isError":false' in text.replace(" ", ""):
                    return time.perf_counter() - t0
            except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
                pass
            time.sleep(0.001)
        raise SystemExit("the server never answered")
    finally:
        p.terminate(); p.wait()
cold, warm = [], []
for _ in range(RUNS):
    d = tempfile.mkdtemp()
    cold.append(once(d)); warm.append(once(d))
    shutil.rmtree(d)
print(f"cold (empty cache): median {statistics.median(cold)*1000:.0f} ms ({', '.join(f'{x*1000:.0f}' for x in cold)})")
print(f"warm (cache filled): median {statistics.median(warm)*1000:.0f} ms ({', '.join(f'{x*1000:.0f}' for x in warm)})")
