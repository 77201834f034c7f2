"""axe-core in the browser tests: the npm package (tests/a11y/, installed by `./run test`) injected into a
page through Playwright, and its WCAG 2.1 A/AA findings turned into a readable failure."""

from __future__ import annotations

from pathlib import Path

AXE = Path(__file__).parent / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
# BITV 2.0 = EN 301 549 = WCAG 2.1 level A and AA
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def axe_violations(page) -> list[dict]:
    """axe-core's WCAG 2.1 A/AA violations on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # evaluated through the DevTools protocol: the pages' Content-Security-Policy (script-src 'self')
        # rightly refuses an injected <script> tag
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;void 0")
    return page.evaluate(
        """async (tags) => {
          const result = await axe.run(document, { runOnly: { type: "tag", values: tags } });
          return result.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5)
              .map((n) => n.target.join(" ") + " — " + n.failureSummary.split("\\n")[1]),
          }));
        }""",
        WCAG_TAGS,
    )


def describe(violations: list[dict]) -> str:
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']}\n    " + "\n    ".join(v["nodes"]) for v in violations
    )
