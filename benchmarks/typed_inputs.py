"""Bundles with string features (a OneHot + scaler ColumnTransformer, a Tf-idf text classifier):
one record and 10,000 records through Model.predict_proba on onnxruntime and on the numpy
backend, against scikit-learn's predict_proba on the same rows. One run, interleaved rounds;
compare ratios, not absolute times (noisy shared machine).

    python benchmarks/typed_inputs.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare, median_call_s  # noqa: E402

WORDS = ["good", "great", "nice", "bad", "awful", "terrible", "plot", "acting", "movie", "film"]


def _models() -> dict[str, tuple[Any, Any]]:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    n = 10_000
    shop = pd.DataFrame({"color": rng.choice(["red", "green", "blue", "teal"], n),
                         "size": rng.choice(["S", "M", "L", "XL"], n), "weight": rng.normal(size=n)})
    y = ((shop["color"] == "red") ^ (shop["weight"] > 0)).astype(int)
    mixed = make_pipeline(ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), ["color", "size"]),
                                             ("n", StandardScaler(), ["weight"])]),
                          LogisticRegression()).fit(shop, y)
    reviews = pd.DataFrame({"review": [" ".join(rng.choice(WORDS, int(rng.integers(1, 12)))) for _ in range(n)]})
    yt = reviews["review"].str.count("good|great|nice") > reviews["review"].str.count("bad|awful|terrible")
    text = make_pipeline(ColumnTransformer([("t", TfidfVectorizer(ngram_range=(1, 2)), "review")]),
                         LogisticRegression(max_iter=500)).fit(reviews, yt)
    return {"onehot+scaler": (mixed, shop), "tfidf 1-2 grams": (text, reviews)}


def _row(name: str, est: Any, data: Any, path: Path, rounds: int) -> list[str]:
    import edge_runtime

    engines = {b: edge_runtime.load(path, backend=b, threads=1) for b in ("onnxruntime", "numpy")}
    first, one = data.head(1), data.head(1).to_dict("records")
    single = compare({"sklearn": lambda: est.predict_proba(first),
                      **{b: (lambda m=m: m.predict_proba(one)) for b, m in engines.items()}},
                     rounds=rounds, number=200, warmup=20)
    batch = {"sklearn": median_call_s(lambda: est.predict_proba(data), 3)}
    for b, m in engines.items():
        batch[b] = median_call_s(lambda m=m: m.predict_proba(data), 3)
    return [f"| {name} | 1 | {single['sklearn']:.0f} µs | {single['onnxruntime']:.0f} µs | {single['numpy']:.0f} µs |",
            f"| {name} | {len(data)} | {batch['sklearn'] * 1e3:.1f} ms | {batch['onnxruntime'] * 1e3:.1f} ms | "
            f"{batch['numpy'] * 1e3:.1f} ms |"]


def main() -> None:
    from converters import convert

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    print(f"# typed inputs, {platform.machine()}, Python {platform.python_version()}, one thread")
    print("| model | rows | scikit-learn | onnxruntime | numpy |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (est, data) in _models().items():
            path = convert(est, data.head(2000), Path(tmp) / name.replace(" ", "_"))
            print("\n".join(_row(name, est, data, path, args.rounds)))


if __name__ == "__main__":
    main()
