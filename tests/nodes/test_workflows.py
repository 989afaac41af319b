"""The shipped workflows: UI and API versions describe the same graph, and ComfyUI serves the UI
versions in its template browser straight from workflows/ (no copies)."""
import pytest

from tests.nodes.comfy_io import WORKFLOWS, api_workflow, ui_workflow

NAMES = ("person", "building")
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def is_widget(spec):
    return isinstance(spec[0], list) or spec[0] in WIDGET_TYPES


def ui_to_api(ui, object_info):
    """The API prompt the UI graph stands for: links become [node id, slot]; widget values are matched
    to the node's widget inputs in ComfyUI's input order (plus the extra values the frontend stores for
    an upload button or a control-after-generate widget)."""
    links = {link[0]: link for link in ui["links"]}
    prompt = {}
    for node in ui["nodes"]:
        info = object_info[node["type"]]
        inputs = {}
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                link = links[slot["link"]]
                inputs[slot["name"]] = [str(link[1]), link[2]]
        values = list(node.get("widgets_values", []))
        for section in ("required", "optional"):
            for name in info["input_order"].get(section, []):
                spec = info["input"][section][name]
                if name in inputs or not is_widget(spec):
                    continue
                inputs[name] = values.pop(0)
                options = spec[1] if len(spec) > 1 else {}
                if options.get("image_upload") or options.get("control_after_generate"):
                    values.pop(0)
        assert values == [], f"node {node['id']} ({node['type']}) has widget values left over: {values}"
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def without_meta(prompt):
    return {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in prompt.items()}


@pytest.mark.parametrize("name", NAMES)
def test_ui_links_are_consistent(name):
    ui = ui_workflow(name)
    ids = [n["id"] for n in ui["nodes"]]
    assert len(set(ids)) == len(ids) and ui["last_node_id"] == max(ids)
    assert ui["last_link_id"] == max(link[0] for link in ui["links"])
    for link_id, origin, origin_slot, target, target_slot, link_type in ui["links"]:
        source = next(n for n in ui["nodes"] if n["id"] == origin)
        sink = next(n for n in ui["nodes"] if n["id"] == target)
        assert link_id in source["outputs"][origin_slot]["links"]
        assert sink["inputs"][target_slot]["link"] == link_id
        assert source["outputs"][origin_slot]["type"] == sink["inputs"][target_slot]["type"] == link_type


@pytest.mark.parametrize("name", NAMES)
def test_ui_and_api_versions_are_the_same_graph(comfy, name):
    object_info = comfy.object_info()
    assert ui_to_api(ui_workflow(name), object_info) == without_meta(api_workflow(name))


def test_template_browser_serves_the_workflows_folder(comfy):
    templates = comfy.get_json("/workflow_templates")
    packs = [pack for pack, names in templates.items() if set(NAMES) <= set(names)]
    assert len(packs) == 1, f"the pack's workflows are not listed once: {templates}"
    assert sorted(templates[packs[0]]) == sorted(NAMES), "only the UI workflows are templates (not api/)"
    for name in NAMES:
        served = comfy.get_json(f"/api/workflow_templates/{packs[0]}/{name}.json")
        assert served == ui_workflow(name)
        assert (WORKFLOWS / f"{name}.json").is_file()
