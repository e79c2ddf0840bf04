"""The app behind nginx: GET / answers JSON with the greeting the migration
inserted and a visit counter from PostgreSQL, and a hit counter from Redis.
Connection settings come from the PG* environment and REDIS_HOST."""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import redis

REDIS = redis.Redis(host=os.environ.get("REDIS_HOST", "redis"), socket_timeout=3)


def from_postgres():
    conn = psycopg2.connect(connect_timeout=3)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT message, created_at FROM greeting WHERE id = 1")
            message, created = cur.fetchone()
            cur.execute("UPDATE visits SET n = n + 1 WHERE id = 1 RETURNING n")
            (visits,) = cur.fetchone()
    finally:
        conn.close()
    return {"message": message, "created_at": created.isoformat(), "visits": visits}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            return self.reply(200, {"ok": True})
        if self.path != "/":
            return self.reply(404, {"error": "not found"})
        try:
            body = {"postgres": from_postgres(), "redis": {"hits": REDIS.incr("hits")}}
        except (psycopg2.Error, redis.RedisError) as e:
            return self.reply(503, {"error": str(e).strip()})
        self.reply(200, body)

    def reply(self, code, body):
        data = (json.dumps(body) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print("app:", self.address_string(), fmt % args, flush=True)


if __name__ == "__main__":
    # As pid 1 the default SIGTERM action does nothing: exit on it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("0.0.0.0", 8000), Handler)
    print("app: listening on :8000", flush=True)
    server.serve_forever()
