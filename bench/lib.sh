# bench/lib.sh: what the server benchmarks share (sourced, not run).

# free_port: a loopback port that was free when asked.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_nginx DIR HTTP_LINES SERVER_BLOCK: nginx as tests/support/tlsserver.py
# runs it (foreground, one process, every file under DIR), with HTTP_LINES
# added to its http block and SERVER_BLOCK as its one server; waits for its
# pid file and sets nginx_pid.
start_nginx() {
  local d=$1
  mkdir -p "$d"
  cat >"$d/nginx.conf" <<NGX
daemon off;
master_process off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/octet-stream;
  client_body_temp_path $d/tmp-body;
  proxy_temp_path $d/tmp-proxy;
  fastcgi_temp_path $d/tmp-fcgi;
  uwsgi_temp_path $d/tmp-uwsgi;
  scgi_temp_path $d/tmp-scgi;
  sendfile on;
  $2
  server { $3 }
}
NGX
  nginx -c "$d/nginx.conf" -p "$d" -e "$d/error.log" & nginx_pid=$!
  for _ in $(seq 100); do [ -s "$d/nginx.pid" ] && break; sleep 0.05; done
}

# proc_cpu PID: the process' CPU so far (utime + stime of all its threads),
# in clock ticks.
proc_cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
