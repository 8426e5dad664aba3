# Sourced by the benchmark scripts: small helpers, no side effects.
# port: a free TCP port of 127.0.0.1 (nobody listening on it now).
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_port PORT [TRIES]: until something accepts on 127.0.0.1:PORT (0.1 s a try, 100 tries).
wait_port() { for _ in $(seq 1 "${2:-100}"); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# key_of: the first "api_key" string anywhere in the JSON on stdin (what
# `atshub tenant add --json` and `connection add --json` print).
key_of() { python3 -c 'import json,sys
def f(d):
  if isinstance(d,dict):
    for k,v in d.items():
      if k=="api_key" and isinstance(v,str): return v
      r=f(v)
      if r: return r
print(f(json.load(sys.stdin)))'; }
