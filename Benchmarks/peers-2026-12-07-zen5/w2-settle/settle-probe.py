# Times our `stegastamp bench --worker` alone, as the peers driver does, to take its settle pause apart:
#   python settle-probe.py SETTLE_MS FLUSH [CALLS] [BINARY]   (FLUSH 1: touch 64 MB between calls, as other workers evict the caches)
# Needs numpy (the peers environment: /tmp/peers/bin/python).
import subprocess, json, sys, os, numpy as np
settle, flush, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv)>3 else 40
repo = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..')
exe = sys.argv[4] if len(sys.argv)>4 else os.path.join(repo, '.build', 'release', 'stegastamp')
p = subprocess.Popen([exe,'bench','--worker','--settle-ms',str(settle),'--size','128','--workload','W2'],stdin=subprocess.PIPE,stdout=subprocess.PIPE,text=True)
def rd():
    while True:
        l = p.stdout.readline()
        if not l: sys.exit('worker exited')
        if l.startswith('@@'): return json.loads(l[2:])
print(rd())
buf = np.ones(64*1024*1024//4, dtype=np.float32)
ts=[]
for i in range(n):
    if flush: buf += 1.0   # evict the caches, as the other workers do between our calls
    p.stdin.write('run\n'); p.stdin.flush()
    ts.append(rd()['t']*1000)
p.stdin.write('quit\n'); p.stdin.flush()
ts.sort(); print(f'settle {settle} flush {flush}: median {ts[len(ts)//2]:.2f} min {ts[0]:.2f} ms')
