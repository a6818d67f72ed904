"""The app driven by keys through Pilot: every number shown equals the engine's for the selection."""

from __future__ import annotations

import json

import numpy as np
import pytest
from textual.widgets import DataTable, Markdown, SelectionList

from core import metrics as m
from core.ablation import ablate
from core.engine import Profile, compare, layer_distribution, verdict
from core.matrix import MATRIX_KEYS, matrix
from core.predictor_choice import choose_predictor, verdict_basis
from core.uncertainty import permutation_test
from lens_tui.app import NO_BUNDLES, TAU_LADDER, build_app
from lens_tui.help import HelpScreen
from lens_tui.render import BIVARIATE_LABELS, fmt
from lens_tui.views.ablation import AblationView
from lens_tui.views.compare import CARD_LABELS, COLUMNS, VERDICT_FIT_S, CompareView
from lens_tui.views.compare_intervals import APP_REPLICATES
from lens_tui.views.compare_intervals import caption as caption_of
from lens_tui.views.matrix import ALIKE_RGB, DIFFERENT_RGB, MatrixView, hex_color
from lens_tui.widgets.cards import MetricCard
from lens_tui.widgets.expert_chart import KEPT_A_MARK, KEPT_B_MARK
from lens_tui.widgets.plots import AblationPlot, ExpertPlot
from lens_tui.widgets.sparkline import BARS, SparkPanel
from tests.conftest import make_bundle
from tests.lens_tui.helpers import (
    NAMES,
    async_test,
    record_notifications,
    screen_text,
    write_bundles,
)

SIZE = (100, 40)


@pytest.fixture
def paths(tmp_path):
    return write_bundles(tmp_path / "bundles")


def assert_compare_matches_engine(app, pa, pb, r, tau):
    """Cards, verdict and every table cell against core.compare for (A, B, r, τ)."""
    expected = compare(Profile.load(pa), Profile.load(pb), r, tau)
    doc = expected.to_json()
    card_ab = app.query_one("#card-ab", MetricCard)
    for key in m.BIVARIATE_KEYS:
        shown = card_ab.value(BIVARIATE_LABELS[key])
        assert shown == fmt(doc["mean"][key], key), key
        assert shown in screen_text(card_ab)
    for side in ("a", "b"):
        card = app.query_one(f"#card-{side}", MetricCard)
        for key in m.UNIVARIATE_KEYS:
            assert card.value(CARD_LABELS[key]) == fmt(doc["univariate_mean"][side][key], key)
    assert verdict(expected) in str(app.query_one("#verdict").render())
    table = app.query_one("#layer-table", DataTable)
    assert table.row_count == len(doc["layers"])
    for index, row in enumerate(doc["layers"]):
        cells = [str(c) for c in table.get_row_at(index)]
        assert cells[0] == str(row["layer"])
        assert cells[1:] == [fmt(col.value(row), col.key) for col in COLUMNS]
    return expected


@async_test
async def test_keys_change_a_b_r_tau_and_the_shown_numbers_follow_the_engine(paths):
    app = build_app([paths[0].parent])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        # Folder order is by name; A = first, B = second, r = E // 4, τ = 0.01.
        assert (app.a, app.b, app.r, app.tau) == (0, 1, 2, m.DEFAULT_TAU)
        assert_compare_matches_engine(app, paths[0], paths[1], 2, m.DEFAULT_TAU)

        await pilot.press("b", "plus", "plus", "a", "t")
        await pilot.pause()
        assert (app.a, app.b, app.r, app.tau) == (1, 2, 4, 0.02)
        assert_compare_matches_engine(app, paths[1], paths[2], 4, 0.02)
        bar = str(app.query_one("#controls").render())
        assert "beta" in bar and "gamma" in bar and "r 4/8" in bar and "τ 0.02" in bar

        await pilot.press("x", "minus", "T", "T")  # swap, r-1, τ two steps down
        await pilot.pause()
        assert (app.a, app.b, app.r, app.tau) == (2, 1, 3, TAU_LADDER[2])
        assert_compare_matches_engine(app, paths[2], paths[1], 3, TAU_LADDER[2])

        await pilot.press("B", "greater_than_sign", "greater_than_sign")  # E//16 = 0 → step 1
        await pilot.pause()
        assert (app.b, app.r) == (0, 5)
        assert_compare_matches_engine(app, paths[2], paths[0], 5, TAU_LADDER[2])


@async_test
async def test_the_painted_table_and_sparklines_follow_r_and_tau(paths):
    """Table cells are cached by content and sparkline rows repaint only when they change:
    what is painted must be the new numbers."""
    app = build_app(paths)
    async with app.run_test(size=(140, 50)) as pilot:
        await pilot.pause()
        table = app.query_one("#layer-table", DataTable)
        for keys, r, tau in ((["plus"], 3, 0.01), (["plus", "t"], 4, 0.02), (["minus"], 3, 0.02)):
            await pilot.press(*keys)
            await pilot.pause()
            doc = compare(Profile.load(paths[0]), Profile.load(paths[1]), r, tau).to_json()
            painted = screen_text(table).splitlines()[1:]  # below the header
            for row, line in zip(doc["layers"], painted):
                cells = line.split()
                assert cells[0] == str(row["layer"])
                expected = [fmt(c.value(row), c.key) for c in COLUMNS]
                shown = cells[1:]
                assert len(shown) >= 3  # JS, Jaccard@r, Pearson at least are on screen
                assert shown == expected[: len(shown)]
            # The sparkline rows repaint only when their values change: the painted
            # Jaccard and retained-mass ranges must be the new ones.
            sparks = screen_text(app.query_one(SparkPanel)).splitlines()
            for key, label in (("jaccard", "Jaccard@r"), ("retained_mass_a_to_b", "kept mass A→B")):
                values = [row[key] for row in doc["layers"]]
                line = next(line for line in sparks if label in line)
                assert f"{fmt(min(values), key)} … {fmt(max(values), key)}" in line


@async_test
async def test_r_stays_within_one_to_e(paths):
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(*["minus"] * 5)
        assert app.r == 1
        await pilot.press(*["plus"] * 12)
        assert app.r == 8
        await pilot.pause()
        assert_compare_matches_engine(app, paths[0], paths[1], 8, m.DEFAULT_TAU)
        assert app.query_one("#card-ab", MetricCard).value(BIVARIATE_LABELS["jaccard"]) == "1.0000"


@async_test
async def test_selecting_a_layer_plots_its_distributions_with_kept_experts_marked(paths):
    app = build_app(paths)
    async with app.run_test(size=(120, 50)) as pilot:
        await pilot.pause()
        await pilot.press("l", "down", "down")
        await pilot.pause()
        assert app.layer == 2
        plot = app.query_one(ExpertPlot)
        expected = layer_distribution(Profile.load(paths[0]), Profile.load(paths[1]), 2, app.r)
        np.testing.assert_array_equal(plot.result.prob_a, expected.prob_a)
        np.testing.assert_array_equal(plot.result.prob_b, expected.prob_b)
        np.testing.assert_array_equal(plot.result.kept_a, expected.kept_a)
        painted = screen_text(plot)
        assert "layer 2" in painted
        assert painted.count(KEPT_A_MARK) == app.r
        assert painted.count(KEPT_B_MARK) == app.r
        assert "█" in painted
        # The sparkline rows highlight layer 2 and draw one bar per layer from the engine's values.
        spark = app.query_one(SparkPanel)
        assert spark.selected == 2
        js = compare(Profile.load(paths[0]), Profile.load(paths[1]), app.r).layers["js_divergence"]
        bars = spark.bars("js_divergence")
        assert len(bars) == 4
        assert bars[int(np.argmax(js))] == BARS[-1] and bars[int(np.argmin(js))] == BARS[0]
        painted = screen_text(spark)
        assert any("".join(c * k for c in bars) in painted for k in range(1, 40))

        await pilot.press("right_square_bracket")  # ] = next layer, from anywhere
        await pilot.pause()
        assert app.layer == 3 and app.query_one("#layer-table", DataTable).cursor_row == 3
        assert "layer 3" in screen_text(plot)
        await pilot.press("right_square_bracket")
        assert app.layer == 3  # the last layer stays the last


@async_test
async def test_pearson_is_a_dash_when_a_bundle_has_no_energy(paths):
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("b")  # B = gamma, written without energy_sum
        await pilot.pause()
        card = app.query_one("#card-ab", MetricCard)
        assert card.value(BIVARIATE_LABELS["pearson_energy"]) == "—"
        pearson_row = [
            line
            for line in screen_text(app.query_one(SparkPanel)).splitlines()
            if "Pearson" in line
        ]
        assert len(pearson_row) == 1 and "no data" in pearson_row[0]


@async_test
async def test_ablation_view_plots_the_engine_curve_and_steps_adjust(paths):
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("2")
        await pilot.pause()
        view = app.query_one(AblationView)
        profile = Profile.load(paths[0])
        samples = profile.bundle.num_samples  # 24
        assert (view.step, view.cap) == (max(1, samples // 32), samples)
        expected = ablate(profile, app.r, view.step, view.cap)
        assert view.result.counts == expected.counts
        assert view.result.to_final == expected.to_final
        assert view.result.stepwise == expected.stepwise
        status = str(app.query_one("#ablation-status").render())
        converged = expected.converged_at()
        assert (
            (f"converged at n = {converged}" in status)
            if converged
            else ("not converged" in status)
        )
        painted = screen_text(app.query_one(AblationPlot))
        assert f"Jaccard@{app.r} vs calibration sequences" in painted
        # The legend sits above the plot, not over the curves.
        assert "to final" not in painted and "stepwise" not in painted
        assert "━ to final ━ stepwise" in status
        if converged:
            assert f"converged n={converged}" in painted  # the vertical line is labelled

        await pilot.press("s", "s", "C", "plus")  # step ×4, cap ÷2, r + 1
        await pilot.pause()
        assert (view.step, view.cap) == (4, 12)
        expected = ablate(profile, app.r, 4, 12)
        assert view.result.r == app.r == 3
        assert view.result.counts == [4, 8, 12] == expected.counts
        assert view.result.to_final == expected.to_final

        await pilot.press("z")  # shuffle with seed 0
        await pilot.pause()
        assert view.result.to_final == ablate(profile, 3, 4, 12, seed=0).to_final
        assert "shuffled" in str(app.query_one("#ablation-settings").render())

        # At step 4, halving cap 12 → 6 → (3) stops at the step and says so; the step stays.
        seen = record_notifications(app)
        await pilot.press("C", "C", "C")
        await pilot.pause()
        assert (view.step, view.cap) == (4, 4)
        assert "1 checkpoint " in str(app.query_one("#ablation-settings").render())
        assert [m for _, m in seen if "cap" in m] == [
            "cap stopped at the step (4); S halves the step",
            "the cap is already the step (4): halve the step first (S)",
        ]

        await pilot.press("a")  # dataset A changes: the ablation follows, with its own defaults
        await pilot.pause()
        other = Profile.load(paths[1])
        assert view.result.profile.bundle.path == other.bundle.path
        assert view.cap == other.bundle.num_samples


@async_test
async def test_matrix_view_shows_the_engine_matrices_heat_coloured_and_bundles_can_be_unticked(
    paths,
):
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("3")
        await pilot.pause()
        view = app.query_one(MatrixView)
        profiles = [Profile.load(p) for p in paths]
        expected = matrix(profiles, app.r).to_json()
        for key in MATRIX_KEYS:
            table = view.table(key)
            for i in range(3):
                cells = table.get_row_at(i)
                assert str(cells[0]) == f"#{i + 1} {NAMES[i]}"
                assert [str(c) for c in cells[1:]] == [fmt(v, key) for v in expected[key][i]]
        # Heat colours: the most different off-diagonal JS cell is red, the most alike green.
        js = np.array(expected["js_divergence"], dtype=float)
        np.fill_diagonal(js, np.nan)
        hi = np.unravel_index(np.nanargmax(js), js.shape)
        lo = np.unravel_index(np.nanargmin(js), js.shape)
        table = view.table("js_divergence")
        cell_hi = table.get_row_at(int(hi[0]))[int(hi[1]) + 1]
        cell_lo = table.get_row_at(int(lo[0]))[int(lo[1]) + 1]
        assert hex_color(DIFFERENT_RGB) in str(cell_hi.style)
        assert hex_color(ALIKE_RGB) in str(cell_lo.style)

        # r changes the Jaccard and retained-mass matrices to the engine's at the new r.
        await pilot.press("plus")
        await pilot.pause()
        expected = matrix(profiles, 3).to_json()
        assert [str(c) for c in view.table("jaccard").get_row_at(1)[1:]] == [
            fmt(v, "jaccard") for v in expected["jaccard"][1]
        ]

        # Untick the first bundle: the matrices cover the other two.
        picker = app.query_one("#matrix-bundles", SelectionList)
        assert picker.has_focus
        await pilot.press("space")
        await pilot.pause()
        assert [p.bundle.path for p in view.result.profiles] == paths[1:]
        assert view.table("jaccard").row_count == 2
        await pilot.press("down", "space")
        await pilot.pause()
        assert view.result is None
        assert "at least two" in str(app.query_one("#matrix-message").render())


@async_test
async def test_a_corrupt_bundle_in_a_folder_is_reported_and_the_rest_load(tmp_path):
    paths = write_bundles(tmp_path / "mixed")
    broken = tmp_path / "mixed" / "broken.safetensors"
    broken.write_bytes(paths[0].read_bytes()[:200])  # truncated
    app = build_app([tmp_path / "mixed", tmp_path / "missing.safetensors"])
    notes = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.labels == ["alpha", "beta", "gamma"]
        errors = [msg for severity, msg in notes if severity == "error"]
        assert any("broken.safetensors" in msg for msg in errors)
        assert any("missing.safetensors" in msg and "no such file" in msg for msg in errors)
        assert_compare_matches_engine(app, paths[0], paths[1], 2, m.DEFAULT_TAU)


@async_test
async def test_without_bundles_the_app_says_so_and_keys_do_nothing_harmful(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    app = build_app([empty], notice="sample_stats/ not found")
    notes = record_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert ("warning", "sample_stats/ not found") in notes
        assert any("no bundles" in msg for _, msg in notes)
        assert NO_BUNDLES in str(app.query_one("#verdict").render())
        await pilot.press("a", "b", "plus", "t", "x", "right_square_bracket", "2", "3", "1")
        await pilot.pause()
        assert app.is_running


@async_test
async def test_bundles_of_different_models_show_an_error_instead_of_numbers(tmp_path):
    a = make_bundle(tmp_path / "a.safetensors", layers=4, experts=8)
    b = make_bundle(tmp_path / "b.safetensors", layers=4, experts=6)
    app = build_app([a, b])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "same model" in str(app.query_one("#verdict").render())
        assert app.query_one(CompareView).comparison is None
        await pilot.press("3")
        await pilot.pause()
        assert "same model" in str(app.query_one("#matrix-message").render())
        await pilot.press("1", "b")  # B = a itself: comparable again
        await pilot.pause()
        assert app.query_one(CompareView).comparison is not None


@async_test
async def test_help_lists_every_binding_and_closes(paths):
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        shown = app.screen.query_one(Markdown).source
        for row in (
            "| everywhere | `a` | Next dataset A |",
            "| everywhere | `+` | r + 1 |",
            "| everywhere | `t` | Raise the sparsity threshold τ |",
            "| everywhere | `]` | Next layer |",
            "| compare | `l` |",
            "| ablation | `s` | Step ×2 |",
            "| collect | `ctrl+s` | Start |",
            "| collect | `ctrl+g` | Cancel run |",
            "| everywhere | `>` | r + E/16 (coarse) |",
            "| everywhere | `<` | r − E/16 (coarse) |",
            "| everywhere | `tab` | Move the focus to the next panel or table |",
            "| matrix | `space` | Tick or untick the highlighted bundle |",
            "| everywhere | `/` | Filter bundles by name",
            "| compare | `o` | Sort the table by the next column |",
            "| compare | `O` | Reverse the table's order |",
            "| matrix | `o` | Sort the table by the next column |",
            "| samples | `o` | Sort the table by the next column |",
            "| predict | `p` |",
            "| predict | `o` | Sort the table by the next column |",
            "| predict | `O` | Reverse the table's order |",
        ):
            assert row in shown
        assert "_sign" not in shown and "question_mark" not in shown
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)

        # Help opened on a view lists that view's keys before everything else.
        await pilot.press("3", "question_mark")
        await pilot.pause()
        rows = [
            line for line in app.screen.query_one(Markdown).source.splitlines() if "| `" in line
        ]
        wheres = [row.split("|")[1].strip() for row in rows]
        first_elsewhere = wheres.index("everywhere")
        assert set(wheres[:first_elsewhere]) == {"matrix"}
        assert "| matrix | `space` |" in "\n".join(rows[:first_elsewhere])
        assert "| matrix | `o` |" in "\n".join(rows[:first_elsewhere])
        assert rows[first_elsewhere].startswith("| everywhere | `q` |")


@async_test
async def test_command_palette_commands_set_the_selection(paths):
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        commands = {c.title: c.callback for c in app.get_system_commands(app.screen)}
        commands["Set A: gamma"]()
        commands["Set r = 6"]()
        commands["Set τ = 0.05"]()
        commands["Go to layer 1"]()
        commands["View: Matrix"]()
        await pilot.pause()
        assert (app.a, app.r, app.tau, app.layer) == (2, 6, 0.05, 1)
        assert app.query_one("#views").active == "matrix"
        await pilot.press("1")
        await pilot.pause()
        assert_compare_matches_engine(app, paths[2], paths[1], 6, 0.05)


@async_test
async def test_the_verdict_is_never_clipped_when_its_length_changes(paths):
    """The verdict is laid out again only when its height changes; it must always fit.

    It grows at once; a shorter text gives back its lines once it has rested
    for ``VERDICT_FIT_S`` (not between keys): then no blank line stays.
    """
    app = build_app(paths)
    async with app.run_test(size=(80, 30)) as pilot:  # r=1's verdict wraps, r=8's does not
        await pilot.pause()
        widget = app.query_one("#verdict")
        heights = set()
        for keys in (["minus"] * 8, ["plus"] * 8, ["minus"] * 8):  # r = 1, r = E = 8, r = 1
            await pilot.press(*keys)
            await app.workers.wait_for_complete()  # the permutation test joins the verdict
            await pilot.pause()
            text_height = widget.get_content_height(
                widget.container_size, app.size, widget.content_size.width
            )
            assert widget.content_size.height >= text_height  # never clipped, even before the fit
            await pilot.pause(VERDICT_FIT_S + 0.3)
            await pilot.pause()
            a, b = Profile.load(paths[0]), Profile.load(paths[1])
            difference = permutation_test(a, b, app.r, APP_REPLICATES)
            none = verdict_basis(choose_predictor([]), a, b, app.r)  # no evaluation loaded
            expected = verdict(compare(a, b, app.r), difference, none)
            painted = [line.strip() for line in screen_text(widget).splitlines()]
            caption = caption_of(app.query_one(CompareView).intervals)
            assert " ".join(p for p in painted if p) == f"verdict: {expected} · {caption}"
            assert all(painted), "a blank line: the verdict kept the height of a longer text"
            heights.add(widget.size.height)
        assert len(heights) > 1  # the test did exercise a change of height


@async_test
async def test_the_palette_sets_typed_values(paths, tmp_path, monkeypatch):
    """ctrl+p then ``tau 0.03`` / ``r 6`` / ``layer 2`` / ``b gam`` sets exactly that value."""
    from textual.widgets import OptionList

    monkeypatch.chdir(tmp_path)  # a key typed before the palette opens must not export here

    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for query, hit in (
            ("tau 0.03", "Set τ = 0.03"),
            ("r 6", "Set r = 6"),
            ("layer 2", "Set layer = 2"),
            ("b gam", "Set dataset B = gam"),
        ):
            await pilot.press("ctrl+p")
            for _ in range(100):  # typed before the palette is up, keys would go to the app
                await pilot.pause(0.05)
                if app.screen.query(OptionList):
                    break
            await pilot.press(*query)
            for _ in range(100):  # the palette searches in the background: wait for the hit
                await pilot.pause(0.05)
                options = app.screen.query_one(OptionList)
                prompts = [
                    str(options.get_option_at_index(i).prompt) for i in range(options.option_count)
                ]
                found = [i for i, prompt in enumerate(prompts) if hit in prompt]
                if found:
                    break
            assert found, (query, prompts[:3])
            options.highlighted = found[0]  # the typed-value hit, whatever else matched
            await pilot.press("enter")
            await pilot.pause()
        assert (app.tau, app.r, app.layer, app.b) == (0.03, 6, 2, 2)
        assert_compare_matches_engine(app, paths[0], paths[2], 6, 0.03)


@async_test
async def test_matrix_ticks_differ_by_glyph_and_arrows_scroll_with_labels_fixed(paths):
    app = build_app(paths)
    async with app.run_test(size=(50, 24)) as pilot:  # narrow: the matrices scroll sideways
        await pilot.pause()
        await pilot.press("3")
        await pilot.pause()
        await app.workers.wait_for_complete()  # gamma (neither A nor B) is read on first use
        await pilot.pause()
        table = app.query_one(MatrixView).table("js_divergence")
        await pilot.press("right")
        await pilot.pause()
        assert table.scroll_x > 0
        assert app.query_one("#matrix-bundles").has_focus  # no Tab needed
        painted = screen_text(table).splitlines()
        assert painted[1].lstrip().startswith("#1 alpha")  # row labels stay in view
        assert "#1 " not in painted[0]  # while the numbered columns moved on

        await pilot.press("down", "space")  # untick #2 beta
        await pilot.pause()
        listed = screen_text(app.query_one("#matrix-bundles")).splitlines()
        ticked = {line.split("#")[1].split()[1] for line in listed if "✔" in line}
        unticked = {line.split("#")[1].split()[1] for line in listed if "▐ ▌" in line}
        assert (ticked, unticked) == ({"alpha", "gamma"}, {"beta"})
        assert [str(c.label) for c in table.columns.values()][1:] == ["#1", "#3"]


@async_test
async def test_the_app_remembers_a_b_r_tau_and_the_view_between_runs(paths, tmp_path, monkeypatch):
    state_home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state_home))
    app = build_app([paths[0].parent])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("a", "a", "plus", "t", "2", "q")  # A = gamma, r = 3, τ = 0.02, Ablation
        await pilot.pause()
    saved = json.loads((state_home / "expert-calibration-lens" / "state.json").read_text())
    assert saved == {
        "a": str(paths[2].resolve()),
        "b": str(paths[1].resolve()),
        "r": 3,
        "tau": 0.02,
        "view": "ablation",
    }

    app = build_app([paths[0].parent])
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(50):  # the restored tab activates through the message queue
            await pilot.pause(0.05)
            if app.query_one("#views").active == "ablation":
                break
        assert (app.a, app.b, app.r, app.tau) == (2, 1, 3, 0.02)
        assert app.query_one("#views").active == "ablation"
        # The remembered A and B were the ones read at start: alpha (the default A) was not.
        assert [p.has_signature for p in app.selection.profiles] == [False, True, True]

    # Only the bundles loaded now count: with beta alone, A and B fall back; r and τ stay.
    app = build_app([paths[1]])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert (app.a, app.b, app.r, app.tau) == (0, 0, 3, 0.02)


@async_test
async def test_bundles_of_two_models_are_grouped_and_m_switches_model(paths, tmp_path):
    """A lone bundle of another model given first: the app opens on a pair of one model."""
    lone = make_bundle(tmp_path / "other.safetensors", layers=3, experts=6, model="other-moe")
    app = build_app([lone, paths[0].parent])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.labels == ["other", *NAMES]
        assert (app.a, app.b) == (1, 2)  # alpha vs beta, not "other" vs itself
        assert app.query_one(CompareView).comparison is not None
        assert "tiny-moe" in str(app.query_one("#controls").render())
        await pilot.press("b", "b", "b")  # B cycles within tiny-moe: gamma, alpha, beta
        await pilot.pause()
        assert app.b == 2
        await pilot.press("3")
        await pilot.pause()
        view = app.query_one(MatrixView)
        assert [p.bundle.path for p in view.result.profiles] == paths  # "other" left out
        assert "other models left out" in str(app.query_one("#matrix-message").render())
        await pilot.press("m")  # the other model: one bundle, A = B = other
        await pilot.pause()
        assert (app.a, app.b) == (0, 0)
        assert "other-moe" in str(app.query_one("#controls").render())
        assert view.result is None
        await pilot.press("1")
        await pilot.pause()
        assert app.query_one(CompareView).comparison is not None  # other vs itself, no error


@async_test
async def test_j_and_k_move_in_the_layer_table_and_the_bundle_list(paths):
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("l", "j", "j", "k")
        await pilot.pause()
        assert app.layer == 1
        await pilot.press("3", "j", "j", "k")
        await pilot.pause()
        assert app.query_one("#matrix-bundles", SelectionList).highlighted == 1


@async_test
async def test_e_exports_the_current_view_as_the_cli_json(paths, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("e", "e")  # twice: the second file gets a new name
        await pilot.press("3", "e")
        await pilot.pause()
    first = tmp_path / "lens-compare-alpha-vs-beta-r2.json"
    second = tmp_path / "lens-compare-alpha-vs-beta-r2-2.json"
    expected = compare(Profile.load(paths[0]), Profile.load(paths[1]), 2).to_json()
    assert json.loads(first.read_text()) == json.loads(json.dumps(expected))
    assert json.loads(second.read_text()) == json.loads(first.read_text())
    shown = json.loads((tmp_path / "lens-matrix-alpha-vs-beta-r2.json").read_text())
    assert shown == json.loads(json.dumps(matrix([Profile.load(p) for p in paths], 2).to_json()))


@async_test
async def test_the_palette_finds_a_bundle_by_name(paths):
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")  # "/" filters the bundle lists (test_sorting_and_filter)
        await pilot.pause()
        await pilot.press(*"set b gam")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.b == 2
