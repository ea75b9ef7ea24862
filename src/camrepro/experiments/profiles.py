"""Which section of which profile a chapter starts from: ours (``notebooks/params/<name>.yaml``) or the
reader's own.

A reader reruns a chapter with ``papermill chapter.ipynb out.ipynb -f own.yaml``: papermill injects the file's
``profile`` and the chapter's section, and the notebook calls ``Chapter.params(profile, section)``. The
``profile`` there need not name one of our files; the section is then the reader's whole description of the
run, merged over the chapter's defaults (validated like any other). A name that is neither ours nor a YAML
file, given with no section, is still an error: a typo must not silently run the defaults.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from camrepro.data.paths import user_path


def _own_file(profile: str) -> Path | None:
    if not profile.endswith((".yaml", ".yml")):
        return None
    path = user_path(profile)
    return path if path.is_file() else None


def profile_section(profile: str, chapter: str, *, has_overrides: bool) -> dict[str, object]:
    """The ``chapter`` section of ``profile`` (empty when the profile is the reader's own and its section
    comes as the overrides)."""
    from camrepro.notebooks import BookLayout, available_profiles, load_profile

    if not isinstance(profile, str) or not profile:
        raise TypeError(f"profile must be a non-empty string, got {profile!r}")
    layout = BookLayout.at()
    if (layout.params / f"{profile}.yaml").is_file():
        return dict(load_profile(profile).get(chapter) or {})
    own = _own_file(profile)
    if own is not None:
        content = yaml.safe_load(own.read_text())
        if not isinstance(content, dict):
            raise ValueError(f"{own} must hold a mapping of chapter sections, got {type(content).__name__}")
        section = content.get(chapter) or {}
        if not isinstance(section, dict):
            raise ValueError(f"{own}: the {chapter} section must be a mapping, got {section!r}")
        return dict(section)
    if has_overrides:
        return {}
    raise ValueError(f"unknown profile {profile!r}: no notebooks/params/{profile}.yaml (ours are "
                     f"{available_profiles(layout)}) and no {chapter} parameters were given with it; pass "
                     "the chapter's section with a profile of your own (papermill -f own.yaml), or a path to "
                     "a YAML file")
