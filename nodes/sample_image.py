"""Makes the bundled sample photo available in ComfyUI's input folder, so the workflows run as shipped."""
import os
import shutil

SAMPLE_NAME = "sample_astronaut.png"
SAMPLE_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", SAMPLE_NAME)


def install_sample(input_dir):
    """Copy the sample into `input_dir` if no file of that name is there (a user's file is never
    replaced); returns the path in the input folder."""
    target = os.path.join(input_dir, SAMPLE_NAME)
    if not os.path.exists(target):
        os.makedirs(input_dir, exist_ok=True)
        tmp = target + ".part"
        shutil.copyfile(SAMPLE_SOURCE, tmp)
        os.replace(tmp, target)
    return target
