"""The `video_accuracy` evaluate module. `evaluate.load` reads `video_accuracy.py` from this folder by path; the folder
is a package only so that setuptools' `packages = find:` ships the script in non-editable installs."""
