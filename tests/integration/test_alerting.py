"""End to end with the real binaries (tests/alert_stack.py): kill switch engaged -> exporter ->
Prometheus rule -> Alertmanager route -> `tc alerts receive` -> a notification whose runbook_url
opens a page of the built docs; a probe failing meanwhile is inhibited; released -> a resolved
notification and the probe alert; exporter stopped -> TcExporterDown. Intervals are short (1 s) and every `for:` is divided by 60; waits poll."""

from __future__ import annotations

import json

import pytest

import alert_stack
from alert_stack import AlertStack, get, tc, wait
from conftest import SPECS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    why = alert_stack.missing()
    if why:
        pytest.skip(why)
    work = tmp_path_factory.mktemp("alerting")
    s = AlertStack(work, work / "artifacts").start()
    try:
        yield s
    finally:
        s.close()


def test_engage_fires_routes_and_records_with_a_runbook_that_opens(stack):
    engaged = tc(stack.root, "killswitch", "engage", "--reason", "alerting e2e")
    assert engaged.returncode == 0, engaged.stderr
    line, alert = stack.wait_for_alert("TcKillSwitchEngaged", "firing")
    note = line["notification"]
    assert note["receiver"] == "lab" and note["version"] == "4"
    assert alert["labels"]["severity"] == "warning" and alert["labels"]["area"] == "safety"
    assert "runbook_base" not in alert["labels"]  # dropped by alert_relabel_configs
    url = alert["annotations"]["runbook_url"]
    assert url == stack.urls["docs"] + "/runbooks/kill_switch/"
    page = get(url).decode()
    assert "Runbook: kill switch engaged" in page and "tckillswitchengaged" in page
    listed = tc(stack.root, "alerts", "list", "--json")
    assert listed.returncode == 0
    rows = json.loads(listed.stdout)["data"]["alerts"]
    assert any(r["alertname"] == "TcKillSwitchEngaged" and r["status"] == "firing" and r["runbook_url"] == url for r in rows)

    # A probe that fails while the switch is engaged: Prometheus fires TcProbeDown, Alertmanager
    # holds it back (inhibited by TcKillSwitchEngaged) until the switch is released.
    probe = tc(stack.root, "connectivity", "probe", "--spec", str(SPECS / "connectivity.yaml"), "--url", "http://127.0.0.1:1/", "--timeout-ms", "200")
    assert probe.returncode == 4, probe.stderr
    suppressed = wait("TcProbeDown inhibited in Alertmanager", lambda: [
        a for a in json.loads(get(stack.urls["alertmanager"] + '/api/v2/alerts?filter=alertname%3D%22TcProbeDown%22'))
        if a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]])
    assert suppressed[0]["labels"]["area"] == "connectivity"
    assert not any(a["labels"]["alertname"] == "TcProbeDown" for line in stack.notifications() for a in line["notification"]["alerts"])

    seq = stack.last_seq()
    released = tc(stack.root, "killswitch", "release", "--reason", "alerting e2e done")
    assert released.returncode == 0, released.stderr
    line, alert = stack.wait_for_alert("TcKillSwitchEngaged", "resolved", after_seq=seq)
    assert line["notification"]["status"] == "resolved" and not alert["endsAt"].startswith("0001")
    _, probe_alert = stack.wait_for_alert("TcProbeDown", "firing", after_seq=seq)
    assert probe_alert["annotations"]["runbook_url"] == stack.urls["docs"] + "/runbooks/probe/"
    assert tc(stack.root, "artifacts", "verify", "--all").returncode == 0


def test_stopping_the_exporter_raises_exporter_down(stack):
    seq = stack.last_seq()
    stack.stop("exporter")
    line, alert = stack.wait_for_alert("TcExporterDown", "firing", after_seq=seq)
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["instance"] == stack.urls["exporter"]
    assert alert["annotations"]["runbook_url"] == stack.urls["docs"] + "/runbooks/exporter/"
    assert "Runbook: exporter" in get(alert["annotations"]["runbook_url"]).decode()
