"""Detection latency: from `tc killswitch engage` to the notification artifact, through the real
exporter, Prometheus, Alertmanager and `tc alerts receive` (tests/alert_stack.py), with the
intervals it ran with printed beside it. The ratio is against the configured bound (scrape +
evaluation interval + `for:` + group_wait): below 1 means the path adds little of its own.
TC_BENCH_ROUNDS sets the rounds (5)."""

from __future__ import annotations

import json
import statistics
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import alert_stack
from alert_stack import AlertStack, get, seconds, tc, wait
from harness import WORK, record, round_count, skipped

ROUNDS = round_count(5)
ALERT = "TcKillSwitchEngaged"


def _exported(stack: AlertStack, value: str) -> bool:
    return f"\ntc_kill_switch_engaged {value}" in get(f"http://{stack.urls['exporter']}/metrics").decode()


def _firing_in_prometheus(stack: AlertStack) -> bool:
    query = urllib.parse.urlencode({"query": f'ALERTS{{alertname="{ALERT}",alertstate="firing"}}'})
    return bool(json.loads(get(f"{stack.urls['prometheus']}/api/v1/query?{query}"))["data"]["result"])


def main() -> None:
    why = alert_stack.missing()
    if why:
        skipped("alert detection", why)
        return
    work = WORK / "alerting"
    if work.exists():
        import shutil

        shutil.rmtree(work)
    work.mkdir(parents=True)
    stack = AlertStack(work, work / "artifacts").start()
    try:
        rule = stack.rules[ALERT]
        hold = seconds(rule.get("for", "0s"))
        bound = 2 * seconds(alert_stack.INTERVAL) + hold + seconds(alert_stack.GROUP_WAIT)
        exported, fired, notified, resolved = [], [], [], []
        for i in range(ROUNDS):
            seq = stack.last_seq()
            start = time.perf_counter()
            assert tc(stack.root, "killswitch", "engage", "--reason", f"bench {i}").returncode == 0
            wait("the exporter to show the switch", lambda: _exported(stack, "1"))
            exported.append(time.perf_counter() - start)
            wait("prometheus to fire", lambda: _firing_in_prometheus(stack))
            fired.append(time.perf_counter() - start)
            stack.wait_for_alert(ALERT, "firing", after_seq=seq)
            notified.append(time.perf_counter() - start)
            seq = stack.last_seq()
            start = time.perf_counter()
            assert tc(stack.root, "killswitch", "release", "--reason", f"bench {i} done").returncode == 0
            stack.wait_for_alert(ALERT, "resolved", after_seq=seq)
            resolved.append(time.perf_counter() - start)
    finally:
        stack.close()
    med = statistics.median
    print(f"detection latency, {ALERT} (medians of {ROUNDS}); scrape_interval {alert_stack.INTERVAL}, evaluation_interval "
          f"{alert_stack.INTERVAL}, for: {rule.get('for', '0s')}, Alertmanager group_wait/group_interval {alert_stack.GROUP_WAIT}")
    print(f"  engage -> exporter shows it          {med(exported):7.3f} s")
    print(f"  engage -> Prometheus alert firing    {med(fired):7.3f} s")
    print(f"  engage -> notification artifact      {med(notified):7.3f} s   (max {max(notified):.3f} s)")
    print(f"  release -> resolved notification     {med(resolved):7.3f} s")
    print(f"  bound (scrape + evaluation + for + group_wait) {bound:.3f} s; ratio engage->notification / bound {med(notified) / bound:.2f}")
    record("engage_to_notification", med(notified), "s", bound, samples=[x / bound for x in notified])
    record("engage_to_exporter", med(exported), "s", samples=exported)
    record("engage_to_firing", med(fired), "s", samples=fired)
    record("release_to_resolved", med(resolved), "s", samples=resolved)
    print("  with the shipped config (15 s scrape, 15 s evaluation, no for:, group_wait 10 s) the same bound is 40 s")


if __name__ == "__main__":
    main()
