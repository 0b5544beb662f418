"""Where test data lives: the repository's fixtures and the shared samples beside the checkout."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
ARTICLES = FIXTURES / "articles"
SHARED = REPO.parent / "shared"  # ../shared: real news samples and gold eval data (never copied in)
SAMPLES = SHARED / "samples"
