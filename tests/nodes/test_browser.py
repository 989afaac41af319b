"""The person workflow from inside ComfyUI's real frontend: template browser -> graph -> Run -> output."""
import pytest

from tests.nodes.comfy_io import COLORIZE, LOAD_IMAGE, LOADER, SAVE, api_workflow, as_shipped, node_of, ui_workflow

RUN_TIMEOUT_MS = 300_000


def template_pack_name(comfy):
    return next(pack for pack, names in comfy.get_json("/workflow_templates").items() if "person" in names)


def test_person_workflow_opens_from_the_template_browser_and_runs(comfy, checkpoint_name, browser_page):
    shipped_ckpt = node_of(api_workflow("person"), LOADER)["inputs"]["ckpt_name"]
    if comfy.is_local:
        as_shipped(comfy, api_workflow("person"), checkpoint_name)  # synthetic weights under the shipped name
    elif shipped_ckpt not in comfy.object_info(LOADER)["input"]["required"]["ckpt_name"][0]:
        pytest.skip(f"the server at COMFYUI_URL has no {shipped_ckpt} for the shipped workflow")
    page, recorder = browser_page.page, browser_page.recorder

    browser_page.open_comfyui(comfy.url)
    assert not recorder.pack_errors(), recorder.report()

    page.evaluate("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    page.get_by_text(template_pack_name(comfy), exact=True).click()
    page.get_by_test_id("template-workflow-building").wait_for()
    page.get_by_test_id("template-workflow-person").click()
    page.wait_for_function("() => app.graph.nodes.some(n => n.type === 'DDColorColorize')")
    nodes = page.evaluate("() => app.graph.nodes.map(n => ({id: n.id, type: n.type, values: n.widgets.map(w => w.value)}))")
    expected = {n["id"]: n["type"] for n in ui_workflow("person")["nodes"]}
    assert {n["id"]: n["type"] for n in nodes} == expected
    assert set(expected.values()) == {LOAD_IMAGE, LOADER, COLORIZE, SAVE}
    browser_page.screenshot("person-workflow-opened")

    page.get_by_role("button", name="Run", exact=True).first.click()
    save_id = next(n["id"] for n in nodes if n["type"] == SAVE)
    page.wait_for_function(f"() => app.nodeOutputs?.['{save_id}']?.images?.length > 0", timeout=RUN_TIMEOUT_MS)
    [image] = page.evaluate(f"() => app.nodeOutputs['{save_id}'].images")
    assert image["filename"].startswith("ddcolor_person") and image["type"] == "output"
    # the SaveImage node's preview fetched the output image through /view
    for _ in range(60):
        if any("/view?" in url and f"filename={image['filename']}" in url for url in recorder.loaded_urls):
            break
        page.wait_for_timeout(500)
    else:
        raise AssertionError(f"the page never fetched {image['filename']}: {recorder.loaded_urls[-10:]}")
    page.wait_for_timeout(500)
    browser_page.screenshot("person-workflow-result")
    assert comfy.view(image["filename"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not recorder.pack_errors(), recorder.report()
