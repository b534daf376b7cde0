"""Hold the product to the demo generator's ground truth (used by tests and `ulm evaluate`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb


@dataclass(frozen=True)
class IdentityQuality:
    identifiers: int  # identifiers present in both the truth and the identity map
    predicted_people: int
    true_people: int
    pairwise_precision: float  # of identifier pairs we put together, share truly together
    pairwise_recall: float  # of identifier pairs truly together, share we put together


def identity_quality(work_db: Path, truth_dir: Path) -> IdentityQuality:
    """Pairwise precision and recall of int_identity_map against truth/identities-*.parquet.

    Truth identifiers are normalised and hashed the way staging does (with the key stored in
    the working database), so they meet the identity map's node ids."""
    with duckdb.connect(str(work_db), read_only=True) as con:
        con.execute(
            f"""
            CREATE TEMP TABLE truth AS
            WITH k AS (SELECT key FROM landing.pii_key)
            SELECT
                CASE identifier_type
                    WHEN 'user_id' THEN 'u:' || identifier
                    WHEN 'anonymous_id' THEN 'a:' || identifier
                    WHEN 'email' THEN 'e:' || sha256(k.key || '|email|' || lower(identifier))
                    WHEN 'phone' THEN 'p:' || sha256(
                        k.key || '|phone|' || regexp_replace(identifier, '[^0-9]', '', 'g'))
                END AS node_id,
                person_id
            FROM read_parquet('{Path(truth_dir) / "identities-*.parquet"}'), k
            """
        )
        row = con.execute(
            """
            WITH joined AS (
                SELECT t.person_id, m.user_key
                FROM truth t JOIN intermediate.int_identity_map m USING (node_id)
            ),
            both_ AS (SELECT user_key, person_id, count(*) n FROM joined GROUP BY ALL),
            pred AS (SELECT user_key, count(*) n FROM joined GROUP BY ALL),
            tru AS (SELECT person_id, count(*) n FROM joined GROUP BY ALL)
            SELECT
                (SELECT count(*) FROM joined),
                (SELECT count(*) FROM pred),
                (SELECT count(*) FROM tru),
                (SELECT sum(n * (n - 1) / 2) FROM both_),
                (SELECT sum(n * (n - 1) / 2) FROM pred),
                (SELECT sum(n * (n - 1) / 2) FROM tru)
            """
        ).fetchall()[0]
    n, pred_people, true_people, tp, pred_pairs, true_pairs = row
    return IdentityQuality(
        identifiers=int(n),
        predicted_people=int(pred_people),
        true_people=int(true_people),
        pairwise_precision=float(tp / pred_pairs) if pred_pairs else 1.0,
        pairwise_recall=float(tp / true_pairs) if true_pairs else 1.0,
    )
