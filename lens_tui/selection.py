"""What every view of the app shares: the loaded bundles and the user's selection, as one value.

The app holds a single :class:`Selection` in one Textual reactive
(``LensApp.selection``). A key press builds a new value with
:meth:`Selection.replace` and assigns it; the views watch the reactive and
repaint themselves (see :mod:`lens_tui.views.base`). Being frozen, a
selection can be handed to a background worker and compared with the one a
view last painted, which is how a view knows whether it is stale.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from core import metrics as m
from core.engine import Profile
from core.formats.evaluation import Evaluation

NO_BUNDLES = (
    "No bundles loaded. Open some with `lens browse PATH…` (files or folders of "
    "*.safetensors), or collect one in the Collect view (4)."
)


@dataclass(frozen=True)
class Selection:
    """The loaded bundles and results, datasets A and B, budget r, threshold τ, layer, ticks.

    ``a`` and ``b`` index ``profiles``; ``ticked`` holds the indexes of the
    bundles the Matrix view compares. :meth:`clamped` keeps every index and r
    in range, and the app applies it to each value it is given.

    ``name_filter`` is the text typed after ``/``: the bundle lists (the Matrix
    and Design pickers) and the A/B keys offer only the bundles whose label
    contains it (:attr:`shown`). A and B themselves are kept when the filter
    hides them, so typing never changes what Compare shows; the control bar
    marks them, and ``a`` / ``b`` then move into the filtered set.
    """

    profiles: tuple[Profile, ...] = ()
    labels: tuple[str, ...] = ()  # short names of ``profiles``, unique (see unique_labels)
    evaluations: tuple[Evaluation, ...] = ()  # ``lens evaluate`` results, for the Predict view
    a: int = 0
    b: int = 0
    r: int = 1
    tau: float = m.DEFAULT_TAU
    layer: int = 0
    ticked: frozenset[int] = field(default_factory=frozenset)
    name_filter: str = ""

    @property
    def profile_a(self) -> Profile:
        return self.profiles[self.a]

    @property
    def profile_b(self) -> Profile:
        return self.profiles[self.b]

    @property
    def label_a(self) -> str:
        return self.labels[self.a]

    @property
    def label_b(self) -> str:
        return self.labels[self.b]

    @property
    def models(self) -> list[str]:
        """The models of the loaded bundles, each once, in loading order."""
        return list(dict.fromkeys(p.bundle.model for p in self.profiles))

    @property
    def model(self) -> str:
        """The current model: dataset A's. A and B are always bundles of it."""
        return self.profile_a.bundle.model

    def matches(self, index: int) -> bool:
        """Whether bundle ``index``'s label contains the filter (case-insensitive; all do without one)."""
        return self.name_filter.casefold() in self.labels[index].casefold()

    @property
    def shown(self) -> list[int]:
        """Indexes of the bundles the filter lets the lists show, in loading order."""
        return [i for i in range(len(self.profiles)) if self.matches(i)]

    def of_model(self, model: str | None = None) -> list[int]:
        """Indexes of the bundles of ``model`` (default: the current one), in loading order."""
        model = self.model if model is None else model
        return [i for i, p in enumerate(self.profiles) if p.bundle.model == model]

    def replace(self, **changes: object) -> Selection:
        """This selection with ``changes`` applied and clamped into range."""
        return dataclasses.replace(self, **changes).clamped()  # type: ignore[arg-type]

    def clamped(self) -> Selection:
        """A and B wrap around the loaded bundles; r stays in 1..E and the layer in 0..L-1 of A.

        B is always a bundle of A's model (two models' routing cannot be compared):
        a B of another model becomes the first other bundle of A's model, or A itself.
        """
        count = len(self.profiles)
        if count == 0:
            return self
        a, b = self.a % count, self.b % count
        profile = self.profiles[a]
        if self.profiles[b].bundle.model != profile.bundle.model:
            same = [
                i for i, p in enumerate(self.profiles) if p.bundle.model == profile.bundle.model
            ]
            b = next((i for i in same if i != a), a)
        r = min(max(1, int(self.r)), profile.num_experts)
        layer = min(max(0, int(self.layer)), profile.num_layers - 1)
        ticked = frozenset(i for i in self.ticked if 0 <= i < count)
        if (a, b, r, layer, ticked) == (self.a, self.b, self.r, self.layer, self.ticked):
            return self
        return dataclasses.replace(self, a=a, b=b, r=r, layer=layer, ticked=ticked)

    def with_profile(self, profile: Profile) -> tuple[Selection, int]:
        """The selection with ``profile`` added (or replacing one of the same file), and its index.

        The first bundle sets r to E/4; the second becomes dataset B; a new
        bundle is ticked for the matrix.
        """
        profiles = list(self.profiles)
        resolved = profile.bundle.path.resolve()
        ticked = self.ticked
        for index, existing in enumerate(profiles):
            if existing.bundle.path.resolve() == resolved:
                profiles[index] = profile
                break
        else:
            profiles.append(profile)
            index = len(profiles) - 1
            ticked = ticked | {index}
        changes: dict[str, object] = {
            "profiles": tuple(profiles),
            "labels": tuple(unique_labels(profiles)),
            "ticked": ticked,
        }
        if len(profiles) == 1:
            changes.update(a=0, b=0, r=max(1, profile.num_experts // 4))
        elif len(profiles) == 2 and self.a == self.b == 0:
            changes["b"] = 1
        return self.replace(**changes), index

    def with_evaluation(self, evaluation: Evaluation) -> Selection:
        """The selection with ``evaluation`` added, replacing one read from the same file."""
        kept = tuple(e for e in self.evaluations if e.path != evaluation.path)
        return self.replace(evaluations=(*kept, evaluation))


def unique_labels(profiles: list[Profile]) -> list[str]:
    """Short names for pickers: the file name, with the folder added where names clash."""
    names = [p.name for p in profiles]
    labels = []
    for profile, name in zip(profiles, names):
        if names.count(name) > 1:
            labels.append(f"{profile.bundle.path.parent.name}/{name}")
        else:
            labels.append(name)
    return labels
