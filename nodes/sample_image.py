"""Makes the bundled sample photos available in ComfyUI's input folder, so the workflows run as shipped.

The person workflow loads sample_person.png and the building workflow sample_building.png (both
black and white, public domain: assets/SOURCES.md); sample_astronaut.png is a colour photo for
trying the strength option.
"""
import os
import shutil

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")
SAMPLE_NAMES = ("sample_person.png", "sample_building.png", "sample_astronaut.png")
WORKFLOW_SAMPLES = {"person": "sample_person.png", "building": "sample_building.png"}


def install_sample(input_dir):
    """Copy each sample into `input_dir` if no file of that name is there (a user's file is never
    replaced); returns their paths in the input folder."""
    os.makedirs(input_dir, exist_ok=True)
    targets = []
    for name in SAMPLE_NAMES:
        target = os.path.join(input_dir, name)
        if not os.path.exists(target):
            tmp = target + ".part"
            shutil.copyfile(os.path.join(ASSETS, name), tmp)
            os.replace(tmp, target)
        targets.append(target)
    return targets
