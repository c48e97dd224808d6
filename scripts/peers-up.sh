#!/usr/bin/env bash
# Sourced by scripts/peers.sh and scripts/bench.sh: installs and starts the independent peers
# (nginx, Caddy, squid, nghttpx, dante) on free loopback ports, exports where they listen
# (BURROW_*), and stops them when the sourcing shell exits. Needs root for apt-get.

need() { command -v "$1" >/dev/null 2>&1; }
missing=()
need nginx || missing+=(nginx)
need curl || missing+=(curl)
need caddy || missing+=(caddy)
need squid || missing+=(squid)
need nghttpx || missing+=(nghttp2-proxy)
need danted || missing+=(dante-server)
need haproxy || missing+=(haproxy)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# An independent HTTP/3 client (libcurl 8 with HTTP/3, bundled in the wheel).
python3 -c 'import curl_cffi' 2>/dev/null || pip install -q curl_cffi
# An independent WebSocket server (Python's websockets; libcurl above is the client).
python3 -c 'import websockets.asyncio.server' 2>/dev/null || pip install -q 'websockets>=13'

ulimit -n 65536 2>/dev/null || true
work=$(mktemp -d /tmp/burrow-peers.XXXXXX)
chmod 755 "$work"  # nginx workers run unprivileged
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  kill "$(cat "$work/nginx.pid" 2>/dev/null)" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# A port free for TCP and for UDP on both loopback addresses (Caddy serves h3 on it).
free_port_both() {
  python3 - <<'PY'
import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); port = t.getsockname()[1]
    try:
        for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                if (fam, kind) == (socket.AF_INET, socket.SOCK_STREAM):
                    continue
                s = socket.socket(fam, kind); s.bind((addr, port)); s.close()
        print(port); break
    except OSError:
        pass
    finally:
        t.close()
PY
}

cargo build -q -p burrow-examples --bin burrow-testpki
./target/debug/burrow-testpki "$work/pki"

# Content: an empty file and 1 MiB of random bytes.
mkdir -p "$work/www/chunked" "$work/logs"
: > "$work/www/0.bin"
head -c 1048576 /dev/urandom > "$work/www/1m.bin"
head -c 67108864 /dev/urandom > "$work/www/64m.bin"
cp "$work/www/1m.bin" "$work/www/chunked/1m.bin"
chmod -R a+rX "$work/www"

plain=$(free_port); tls=$(free_port); tls1=$(free_port); h2c=$(free_port); caddy_port=$(free_port_both)
squid_port=$(free_port); squid_tls=$(free_port); nghttpx_port=$(free_port); dante_port=$(free_port)
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $work/tmp_body;
  proxy_temp_path $work/tmp_proxy;
  fastcgi_temp_path $work/tmp_fcgi;
  uwsgi_temp_path $work/tmp_uwsgi;
  scgi_temp_path $work/tmp_scgi;
  default_type application/octet-stream;
  keepalive_requests 10000000;
  server {
    listen 127.0.0.1:$plain;
    listen 127.0.0.1:$tls ssl http2;
    listen 127.0.0.1:$tls1 ssl;
    listen 127.0.0.1:$h2c http2;
    http2_max_concurrent_streams 128;
    ssl_certificate $work/pki/cert.pem;
    ssl_certificate_key $work/pki/key.pem;
    root $work/www;
    add_header X-Conn \$connection always;
    add_header X-Conn-Requests \$connection_requests always;
    # sub_filter drops Content-Length, so nginx answers chunked.
    location /chunked/ { sub_filter 'burrow' 'burrow'; sub_filter_once off; sub_filter_types *; }
    # Answers before reading the upload; over h2 nginx then resets the stream with NO_ERROR.
    location = /early { client_max_body_size 0; return 200 "early\n"; }
  }
}
CONF
nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' &
pids+=($!)
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/$tls) 2>/dev/null && break
  sleep 0.1
done

# Caddy (quic-go inside) serves the same files over h1, h2 and h3 on one port number.
cat > "$work/Caddyfile" <<CONF
{
  admin off
  auto_https off
  skip_install_trust
  storage file_system $work/caddy-data
  servers {
    protocols h1 h2 h3
  }
}
https://localhost:$caddy_port {
  tls $work/pki/cert.pem $work/pki/key.pem
  bind 127.0.0.1
  root * $work/www
  file_server
}
CONF
HOME="$work" XDG_DATA_HOME="$work" XDG_CONFIG_HOME="$work" caddy run --config "$work/Caddyfile" --adapter caddyfile > "$work/logs/caddy.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/$caddy_port) 2>/dev/null && break
  sleep 0.1
done
# Its HTTP/3 listener comes up beside the TCP one; say so if it did not.
for _ in $(seq 50); do
  grep -q '"enabling HTTP/3 listener"' "$work/logs/caddy.log" && break
  sleep 0.1
done
grep -q '"enabling HTTP/3 listener"' "$work/logs/caddy.log" || { echo "caddy: no HTTP/3 listener:" >&2; tail -5 "$work/logs/caddy.log" >&2; }
export BURROW_CADDY=$caddy_port

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

# squid: HTTP/1.1 forward proxy, and an HTTPS proxy (GnuTLS, no ALPN).
cat > "$work/squid.conf" <<CONF
http_port 127.0.0.1:$squid_port
https_port 127.0.0.1:$squid_tls tls-cert=$work/pki/cert.pem tls-key=$work/pki/key.pem
http_access allow all
cache deny all
pid_filename $work/squid.pid
cache_log $work/logs/squid-cache.log
access_log none
max_filedescriptors 20000
coredump_dir $work
shutdown_lifetime 1 second
CONF
squid -N -f "$work/squid.conf" > "$work/logs/squid.out" 2>&1 &
pids+=($!)
# A second squid with the access rules squid ships with: CONNECT only to port 443.
squid_strict=$(free_port)
mkdir -p "$work/squid-strict"
cat > "$work/squid-strict.conf" <<CONF
http_port 127.0.0.1:$squid_strict
acl SSL_ports port 443
acl CONNECT method CONNECT
http_access deny CONNECT !SSL_ports
http_access allow all
cache deny all
pid_filename $work/squid-strict.pid
cache_log $work/logs/squid-strict-cache.log
access_log none
coredump_dir $work/squid-strict
shutdown_lifetime 1 second
CONF
squid -N -f "$work/squid-strict.conf" > "$work/logs/squid-strict.out" 2>&1 &
pids+=($!)
# nghttpx: HTTP/2 proxy (TLS, ALPN h2) relaying every request to squid.
# Each CONNECT holds a backend connection: the default of 8 per host would queue the rest.
nghttpx --http2-proxy -f"127.0.0.1,$nghttpx_port" -b"127.0.0.1,$squid_port" --backend-connections-per-host=512 \
  --frontend-http2-window-size=16777215 --frontend-http2-connection-window-size=67108864 \
  --no-ocsp --workers=1 --conf=/dev/null --pid-file="$work/nghttpx.pid" --log-level=WARN \
  "$work/pki/key.pem" "$work/pki/cert.pem" > "$work/logs/nghttpx.out" 2>&1 &
pids+=($!)
# dante: SOCKS5 CONNECT and UDP ASSOCIATE.
cat > "$work/danted.conf" <<CONF
logoutput: $work/logs/danted.log
internal: 127.0.0.1 port = $dante_port
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 command: connect udpassociate udpreply bindreply
  udp.portrange: 40000-40999 log: connect }
CONF
danted -f "$work/danted.conf" -p "$work/danted.pid" > "$work/logs/danted.out" 2>&1 &
pids+=($!)
for p in $squid_port $squid_tls $squid_strict $nghttpx_port $dante_port; do wait_port $p; done
export BURROW_SQUID=$squid_port BURROW_SQUID_TLS=$squid_tls BURROW_SQUID_STRICT=$squid_strict BURROW_NGHTTPX=$nghttpx_port BURROW_DANTE=$dante_port
export BURROW_DANTE_LOG="$work/logs/danted.log"

export BURROW_NGINX_PLAIN=$plain BURROW_NGINX_TLS=$tls BURROW_NGINX_TLS1=$tls1 BURROW_NGINX_H2C=$h2c BURROW_NGINX_CA="$work/pki/ca.pem" BURROW_NGINX_ROOT="$work/www"
echo "peers: nginx plain :$plain tls :$tls tls (HTTP/1.1 only) :$tls1 h2c :$h2c; caddy :$caddy_port (tcp+udp); squid :$squid_port https :$squid_tls; nghttpx :$nghttpx_port; dante :$dante_port"
