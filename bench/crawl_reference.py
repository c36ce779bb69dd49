#!/usr/bin/env python3
"""Reference crawler for the crawl bench: what a straightforward Python crawler does.

Pages through a Danbooru-style /posts.json, then fetches every image with a thread pool
(http.client with one persistent connection per worker thread: the strong way to write
it, stronger than a keep-alive-less urllib opener, as most scripts do), takes its SHA-256
and writes it content-addressed (temporary file, fsync, rename), skipping exact duplicates.
Prints one JSON line: images, seconds, images_per_s.
"""
import argparse
import hashlib
import http.client
import json
import os
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--page-limit", type=int, default=200)
    args = ap.parse_args()
    base = urllib.parse.urlsplit(args.url)
    local = threading.local()

    def conn():
        c = getattr(local, "c", None)
        if c is None:
            c = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
            local.c = c
        return c

    def get(path):
        for attempt in range(3):
            c = conn()
            try:
                c.request("GET", path)
                r = c.getresponse()
                body = r.read()
                return r.status, body
            except (http.client.HTTPException, OSError):
                c.close()
                local.c = None
        return 0, b""

    t0 = time.time()
    posts = []
    page = 1
    while True:
        status, body = get(f"/posts.json?tags=&page={page}&limit={args.page_limit}")
        if status != 200:
            break
        batch = json.loads(body)
        if not batch:
            break
        posts.extend(batch)
        if len(batch) < args.page_limit:
            break
        page += 1

    seen = set()
    lock = threading.Lock()
    stored = [0]

    def fetch(p):
        url = urllib.parse.urlsplit(p["file_url"])
        status, body = get(url.path)
        if status != 200:
            return
        sha = hashlib.sha256(body).hexdigest()
        with lock:
            if sha in seen:
                return
            seen.add(sha)
        d = os.path.join(args.out, sha[:2], sha[2:4])
        os.makedirs(d, exist_ok=True)
        tmp = os.path.join(d, sha + ".tmp")
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(d, sha))
        with lock:
            stored[0] += 1

    with ThreadPoolExecutor(max_workers=args.threads) as ex:
        list(ex.map(fetch, posts))
    dt = time.time() - t0
    print(json.dumps({"images": len(posts), "stored": stored[0], "seconds": dt, "images_per_s": len(posts) / dt}))


if __name__ == "__main__":
    main()
