"""deploy/prometheus/rules.yml passes promtool's checks and its unit tests (rules_test.yml), and has an
alert for each of the pack's webhook rules; deploy/alertmanager/alertmanager.yml passes amtool's."""
import subprocess

import yaml

from gpu_guard.ops import RULE_NAMES
from tests.ops.prometheus_servers import ALERTMANAGER_CONFIG, RULES, RULES_TEST, binary

# the webhook rule -> the Prometheus alert that says the same
MATCHING_ALERTS = {"many_pauses": "GpuGuardManyPauses", "long_hold": "GpuGuardHoldTooLong",
                   "sensor_failing": "GpuGuardSensorFailing", "hold_queue_full": "GpuGuardHoldQueueNearlyFull",
                   "reject_burst": "GpuGuardRejectBurst", "many_ooms": "GpuGuardManyOoms"}


def alerts():
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def test_promtool_check_rules():
    result = subprocess.run([binary("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_rules():
    result = subprocess.run([binary("promtool"), "test", "rules", str(RULES_TEST)], capture_output=True, text=True,
                            cwd=RULES_TEST.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_test_case_and_every_webhook_rule_an_alert():
    defined = alerts()
    assert set(MATCHING_ALERTS) == set(RULE_NAMES)
    assert set(MATCHING_ALERTS.values()) <= set(defined)
    assert {"GpuGuardPaused", "GpuGuardPressureHigh", "GpuGuardScrapeDown", "GpuGuardMetricsAbsent",
            "GpuGuardUnguarded"} <= set(defined)
    assert "absent(" in defined["GpuGuardMetricsAbsent"]["expr"]
    tested = {case["alertname"] for test in yaml.safe_load(RULES_TEST.read_text())["tests"]
              for case in test.get("alert_rule_test", ())}
    assert tested == set(defined), f"alerts without a promtool case: {sorted(set(defined) - tested)}"
    for name, rule in defined.items():
        assert {"summary", "description"} <= set(rule["annotations"]) and rule["labels"]["severity"], name


def test_amtool_checks_the_alertmanager_example_and_its_routes():
    amtool = binary("amtool")
    result = subprocess.run([amtool, "check-config", str(ALERTMANAGER_CONFIG)], capture_output=True, text=True)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr
    for labels, receiver in ((["alertname=GpuGuardManyPauses", "severity=warning"], "gpu-guard-capacity"),
                             (["alertname=GpuGuardSensorFailing", "severity=critical"], "gpu-guard-oncall")):
        route = subprocess.run([amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels],
                               capture_output=True, text=True)
        assert route.returncode == 0 and route.stdout.strip() == receiver, route.stdout + route.stderr
