"""The extension's modules under web/vram_guard/ on their own, imported by Chromium from the running ComfyUI exactly as
the frontend loads them (no frontend app needed: each is side-effect free by design)."""
from __future__ import annotations

import pytest

from tests.harness.server import PACK_NAME
from tests.web.comfy_ui import plain


def plain_strings(value):
    """The result of a page script with every string's whitespace made plain (see comfy_ui.plain)."""
    if isinstance(value, str):
        return plain(value)
    if isinstance(value, list):
        return [plain_strings(v) for v in value]
    if isinstance(value, dict):
        return {k: plain_strings(v) for k, v in value.items()}
    return value

pytestmark = [pytest.mark.comfyui, pytest.mark.browser]


@pytest.fixture
def js(web_guard, browser_page):
    """run(body, arg=None): evaluates `body` (async JS with the modules as `m.<module>`) in the page."""
    page = browser_page.page
    page.goto(web_guard.client.url + "/system_stats")
    base = f"/extensions/{PACK_NAME}/vram_guard/"
    modules = ["busy", "format", "gauge", "held_panel", "notices", "settings"]

    def run(body: str, arg=None):
        script = (
            "async (arg) => { const m = {}; "
            + "".join(f"m.{name} = await import('{base}{name}.js'); " for name in modules)
            + body + " }"
        )
        return plain_strings(page.evaluate(script, arg))

    yield run
    assert not browser_page.recorder.pack_errors(), browser_page.recorder.report()


def test_hold_notices_only_for_this_browsers_prompts_and_once_each(js):
    result = js("""
        const n = new m.notices.HoldNotices((id) => id === 'me');
        n.status({state: 'paused', thresholds: {pause_at: 0.85, resume_at: 0.75}, reading: {ratio: 0.9}, held: []});
        const other = n.held([{prompt_id: 'a', position: 1, client_id: 'someone-else'}]);
        const mine = n.held([{prompt_id: 'a', position: 1, client_id: 'someone-else'},
                             {prompt_id: 'b', position: 2, client_id: 'me'}]);
        const again = n.held([{prompt_id: 'b', position: 1, client_id: 'me'}]);
        const stillPaused = n.status({state: 'paused', reading: {ratio: 0.8}, held: [{prompt_id: 'b', position: 1, client_id: 'me'}]});
        const resumed = n.status({state: 'running', reading: {ratio: 0.5}, held: []});
        const later = n.status({state: 'running', reading: {ratio: 0.5}, held: []});
        return {other, mine, again, stillPaused, resumed, later};
    """)
    assert result["other"] == [] and result["again"] == [] and result["stillPaused"] == [] and result["later"] == []
    assert len(result["mine"]) == 1
    assert "number 2 of 2" in result["mine"][0]["description"]
    assert "above 85 %" in result["mine"][0]["description"] and "now 90 %" in result["mine"][0]["description"]
    assert len(result["resumed"]) == 1 and result["resumed"][0]["kind"] == "success"
    assert "below 75 %" in result["resumed"][0]["description"]
    assert "1 held prompt will start" in result["resumed"][0]["description"]


def test_queue_prompt_wrap_turns_only_the_guard_429_into_a_notice(js):
    result = js("""
        const busy = {response: {error: {type: 'gpu_guard_busy', message: 'full', extra_info: {retry_after_s: 12}}, node_errors: {}}};
        const other = {response: {error: {type: 'prompt_outputs_failed_validation', message: 'bad'}, node_errors: {}}};
        const seen = [];
        let next = null;
        const api = {queuePrompt: async function () { if (next) throw next; return {prompt_id: 'x', number: 1, node_errors: {}}; }};
        m.busy.wrapQueuePrompt(api, (d) => seen.push(d));
        const first = api.queuePrompt;
        m.busy.wrapQueuePrompt(api, (d) => seen.push(d));  // a second wrap is a no-op
        const ok = await api.queuePrompt(0, {});
        next = busy;
        const refused = await api.queuePrompt(0, {});
        next = other;
        let rethrown = null;
        try { await api.queuePrompt(0, {}); } catch (e) { rethrown = e === other; }
        return {same: first === api.queuePrompt, ok, refused, rethrown, seen,
                notice: m.busy.busyNotice(seen[0], 0.85), noRetry: m.busy.busyNotice({retryAfterS: null}, null)};
    """)
    assert result["same"] is True
    assert result["ok"]["prompt_id"] == "x"
    assert "prompt_id" not in result["refused"] and result["refused"]["node_errors"] == {}
    assert result["rethrown"] is True
    assert result["seen"] == [{"retryAfterS": 12}]
    assert "above 85 %" in result["notice"]["description"] and "again in 12 s" in result["notice"]["description"]
    assert "GPU memory is high" in result["noRetry"]["description"] and "in a little while" in result["noRetry"]["description"]


def test_settings_sync_posts_user_edits_only_and_reverts_refusals(js):
    result = js("""
        const posts = [], notes = [], values = {};
        let answer = (body) => ({status: 200, body: {...config, ...body}});
        const config = {pause_at: 0.85, resume_at: 0.75, poll_s: 1, max_held: 0, hold_timeout_s: 0,
                        hold_timeout_action: 'keep', fast_lane: true, pinned: ['poll_s']};
        const sync = new m.settings.SettingsSync({
            debounceMs: 10,
            notify: (kind, title, text) => notes.push([kind, title, text]),
            request: async (path, init) => {
                if (init?.method === 'POST') posts.push(JSON.parse(init.body));
                const a = init?.method === 'POST' ? answer(JSON.parse(init.body)) : {status: 200, body: config};
                return {ok: a.status < 300, status: a.status, json: async () => a.body};
            },
            settings: {get: (id) => values[id], set: (id, v) => {
                const p = sync.params.find((q) => q.id === id);
                const old = values[id]; values[id] = v; p.onChange(v, old);
            }},
        });
        const byKey = (key) => sync.params[m.settings.GUARD_SETTINGS.findIndex((d) => d.key === key)];
        sync.params.forEach((p) => p.onChange(p.defaultValue, undefined));   // registration
        await sync.load();
        const loaded = {...values};
        const pollParam = byKey('poll_s');
        // a user edit in the dialog: debounced, written as a ratio
        sync.settings.set('VRAMGuard.PauseAt', 8); sync.settings.set('VRAMGuard.PauseAt', 90);
        await new Promise((r) => setTimeout(r, 80));
        const afterEdit = posts.slice();
        // a refused edit: the reason is shown and the dialog goes back to the server's value
        answer = () => ({status: 400, body: {errors: ['resume_at (0.95) must be below pause_at (0.9)']}});
        sync.settings.set('VRAMGuard.ResumeAt', 95);
        await new Promise((r) => setTimeout(r, 80));
        return {loaded, afterEdit, posts, notes, resumeAfter: values['VRAMGuard.ResumeAt'],
                pinned: {disabled: pollParam.attrs.disabled, name: pollParam.name, tooltip: pollParam.tooltip},
                pauseDisabled: byKey('pause_at').attrs.disabled ?? false};
    """)
    assert result["loaded"]["VRAMGuard.PauseAt"] == 85 and result["loaded"]["VRAMGuard.ResumeAt"] == 75
    assert result["loaded"]["VRAMGuard.FastLane"] is True
    assert result["afterEdit"] == [{"pause_at": 0.9}]  # loading and registration posted nothing
    assert result["posts"][-1] == {"resume_at": 0.95}
    assert result["notes"] and result["notes"][-1][0] == "error" and "must be below pause_at" in result["notes"][-1][2]
    assert result["resumeAfter"] == 75
    assert result["pinned"]["disabled"] is True and "GPU_GUARD_POLL_S" in result["pinned"]["name"]
    assert "unset it and restart" in result["pinned"]["tooltip"]
    assert result["pauseDisabled"] is False


def test_settings_are_read_only_with_the_reason_when_the_guard_does_not_answer(js):
    result = js("""
        const sync = new m.settings.SettingsSync({
            notify: () => {}, settings: {get: () => undefined, set: () => {}},
            request: async () => ({ok: false, status: 404, json: async () => ({})}),
        });
        await sync.load();
        return sync.params.map((p) => [p.attrs.disabled, p.tooltip]);
    """)
    assert all(disabled is True and "answered 404" in tip for disabled, tip in result)


def test_gauge_sparkline_is_bounded_and_marks_transitions(js):
    result = js("""
        const g = m.gauge.createGauge(document, null);
        const history = [];
        for (let i = 0; i < 3000; i++) history.push([1000 + i * 0.1, (i % 100) / 100]);
        g.update({state: 'paused', reading: {ratio: 0.9}, thresholds: {pause_at: 0.85, resume_at: 0.75},
                  probe: {ok: true}, history,
                  transitions: [{at: 1200, from: 'running', to: 'paused', ratio: 0.9},
                                {at: 1250, from: 'paused', to: 'running', ratio: 0.7},
                                {at: 10, from: 'running', to: 'paused', ratio: 0.9}]},
                 [{prompt_id: 'a'}, {prompt_id: 'b'}]);
        const el = g.element;
        return {points: el.querySelector('.vg-spark-line').getAttribute('points').split(' ').length,
                marks: [...el.querySelectorAll('.vg-spark-mark')].map((x) => x.getAttribute('class')),
                label: el.querySelector('.vg-state').textContent, state: el.dataset.state,
                value: el.querySelector('.vg-value').textContent, title: el.title,
                bytes: [m.format.bytes(0), m.format.bytes(1536), m.format.bytes(3 * 1024 ** 3), m.format.bytes(null)],
                durations: [m.format.duration(5), m.format.duration(125), m.format.duration(7300)]};
    """)
    assert 2 <= result["points"] <= 241
    # the transition older than the five-minute window is left out
    assert result["marks"] == ["vg-spark-mark vg-spark-to-paused", "vg-spark-mark vg-spark-to-running"]
    assert result["label"] == "paused · 2 held" and result["state"] == "paused" and result["value"] == "90 %"
    assert "Pauses at 85 %, resumes below 75 %" in result["title"]
    assert result["bytes"] == ["0 B", "1.5 KiB", "3.0 GiB", "unknown"]
    assert result["durations"] == ["5 s", "2 min 5 s", "2 h 1 min"]


def test_gauge_shows_pressure_and_device_use_and_says_why_they_differ(js):
    gib = 1 << 30
    result = js("""
        const g = m.gauge.createGauge(document, null);
        const reading = {ratio: 0.8, device_ratio: 0.9, used_bytes: 90 * arg, total_bytes: 100 * arg,
                         reclaimable: {torch_cache_bytes: 4 * arg, idle_models_bytes: 6 * arg}};
        g.update({state: 'running', reading, thresholds: {pause_at: 0.85, resume_at: 0.75}, probe: {ok: true},
                  history: [], transitions: [], unguarded: {active: false}}, []);
        const el = g.element;
        const plainView = {value: el.querySelector('.vg-value').textContent,
                           device: el.querySelector('.vg-device').textContent,
                           deviceWidth: el.querySelector('.vg-device-fill').style.width,
                           width: el.querySelector('.vg-fill').style.width, title: el.title};
        g.update({state: 'running', reading, thresholds: {pause_at: 0.85, resume_at: 0.75}, probe: {ok: true},
                  history: [], transitions: [], unguarded: {active: true, error: 'RuntimeError: bug'}}, []);
        return {plainView, label: el.querySelector('.vg-state').textContent, state: el.dataset.state,
                unguardedTitle: el.title};
    """, gib)
    view = result["plainView"]
    assert view["value"] == "80 %" and view["device"] == "GPU 90 %"
    assert float(view["width"].rstrip("%")) == 80 and float(view["deviceWidth"].rstrip("%")) == 90
    assert "Pressure (what the guard acts on): 80.0 %" in view["title"]
    assert "GPU memory used (as nvidia-smi shows it): 90.0 %" in view["title"]
    assert "idle models 6.0 %, torch cache 4.0 %" in view["title"] and "not pressure" in view["title"]
    assert result["label"] == "UNGUARDED" and result["state"] == "unguarded"
    assert "QUEUE UNGUARDED" in result["unguardedTitle"] and "RuntimeError: bug" in result["unguardedTitle"]


def test_missing_guard_is_explained_on_the_gauge_and_in_the_panel(js):
    result = js("""
        const g = m.gauge.createGauge(document, null);
        const why = 'GET /gpu_guard/status answered 404; is the VRAM guard installed?';
        g.update(null, [], why);
        const panel = document.createElement('div');
        document.body.append(panel);
        m.held_panel.renderHeldPanel(panel, {status: null, held: [], problem: why});
        const waiting = m.gauge.createGauge(document, null);
        waiting.update(null, []);
        return {state: g.element.dataset.state, label: g.element.querySelector('.vg-state').textContent,
                title: g.element.title, panel: panel.textContent, waiting: waiting.element.dataset.state};
    """)
    assert result["state"] == "unavailable" and result["label"] == "unavailable"
    assert "answered 404" in result["title"] and "answered 404" in result["panel"]
    assert result["waiting"] == "unknown"


def test_gauge_off_state_says_why(js):
    result = js("""
        const g = m.gauge.createGauge(document, null);
        g.update({state: 'off', reading: null, thresholds: {pause_at: 0.85, resume_at: 0.75},
                  probe: {name: 'off', ok: true, note: 'no GPU found: the guard is off'}, history: [], transitions: []}, []);
        return {state: g.element.dataset.state, label: g.element.querySelector('.vg-state').textContent,
                value: g.element.querySelector('.vg-value').textContent,
                title: g.element.title, aria: g.element.getAttribute('aria-label')};
    """)
    assert result["state"] == "off" and result["label"] == "off" and result["value"] == "–"
    assert "no GPU found: the guard is off" in result["title"] and "No memory reading" in result["title"]
    assert result["aria"].startswith("VRAM guard: off. No memory reading")


def test_held_panel_tells_a_pending_estimate_from_an_unknown_one(js):
    result = js("""
        const panel = document.createElement('div');
        document.body.append(panel);
        const row = (id, bytes, source) => ({prompt_id: id, number: 1, position: 1, waited_s: 0, client_id: null,
                                              estimated_bytes: bytes, need_source: source, priority_class: 'normal'});
        m.held_panel.renderHeldPanel(panel, {status: {state: 'paused'}, held: [
            row('a', null, 'pending'), row('b', null, 'unknown'), row('c', 3 * 2 ** 30, 'estimated')]});
        return [...panel.querySelectorAll('tr[data-prompt-id]')].map(tr => tr.querySelectorAll('td')[4].textContent);
    """)
    assert result == ["estimating", "unknown", "3.0 GiB"]
