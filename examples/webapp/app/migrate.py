"""One-shot migration: the schema and its first rows, idempotent (a second
run, on every up, changes nothing), then exit 0."""

import sys
import time

import psycopg2

MIGRATION = """
CREATE TABLE IF NOT EXISTS greeting (
    id         integer PRIMARY KEY,
    message    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO greeting (id, message)
    VALUES (1, 'hello from PostgreSQL')
    ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS visits (
    id integer PRIMARY KEY,
    n  bigint NOT NULL
);
INSERT INTO visits (id, n) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
"""


def main():
    # postgres is healthy before this starts; retry briefly all the same.
    for attempt in range(20):
        try:
            conn = psycopg2.connect(connect_timeout=3)
            break
        except psycopg2.OperationalError as e:
            if attempt == 19:
                raise
            print("migrate: waiting for postgres:", str(e).strip(), flush=True)
            time.sleep(0.5)
    with conn, conn.cursor() as cur:
        cur.execute(MIGRATION)
        cur.execute("SELECT created_at FROM greeting WHERE id = 1")
        (created,) = cur.fetchone()
    conn.close()
    print("migrate: schema ready, greeting created", created.isoformat(), flush=True)


if __name__ == "__main__":
    sys.exit(main())
