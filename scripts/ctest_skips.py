#!/usr/bin/env python3
"""Reads CTest's JUnit report and prints every skipped test with its reason, so that a
skip is never hidden behind "100% tests passed". With --expect FILE (one test name or
Python regular expression per line, '#' comments), exits 1 when a test skipped that FILE
does not list, and names it."""
import argparse
import re
import sys
import xml.etree.ElementTree as ET


def reason(out):
    # GoogleTest prints "file:line: Skipped" and then the message on the next lines.
    lines = (out or "").splitlines()
    for i, line in enumerate(lines):
        if line.rstrip().endswith(": Skipped") and i + 1 < len(lines):
            return lines[i + 1].strip()
    m = re.search(r"SKIP\w*[: ]+(.*)", out or "")
    return m.group(1).strip() if m else "(no reason printed)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("junit")
    ap.add_argument("--expect", help="file of test names/regexes allowed to skip")
    a = ap.parse_args()
    root = ET.parse(a.junit).getroot()
    total = passed = failed = 0
    skipped = []
    for tc in root.iter("testcase"):
        total += 1
        name = tc.get("name")
        out = "".join(e.text or "" for e in tc.iter("system-out"))
        sk = tc.find("skipped")
        # CTest also reports a test it could not start (no executable) as "skipped": that
        # is a failure, not a skip.
        if sk is not None and "Unable to find executable" in (sk.get("message") or ""):
            failed += 1
            print(f"  NOT RUN {name}: {sk.get('message')}")
        elif sk is not None or tc.get("status") in ("notrun", "disabled"):
            skipped.append((name, reason(out)))
        elif tc.find("failure") is not None or tc.find("error") is not None or tc.get("status") == "fail":
            failed += 1
        else:
            passed += 1
    allowed = []
    if a.expect:
        with open(a.expect) as f:
            allowed = [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
    unexpected = [s for s in skipped if not any(re.fullmatch(p, s[0]) for p in allowed)]
    print(f"tests: {total}, passed {passed}, failed {failed}, SKIPPED {len(skipped)} (a skip is not a pass)")
    for name, why in skipped:
        mark = "UNEXPECTED " if a.expect and (name, why) in unexpected else ""
        print(f"  {mark}SKIPPED {name}: {why}")
    if a.expect and unexpected:
        print(f"{len(unexpected)} test(s) skipped that {a.expect} does not expect: fix the setup or list them there",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
