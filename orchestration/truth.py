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


@dataclass(frozen=True)
class ChurnQuality:
    accounts: int  # account holders compared
    detectable_churners: int  # truly churned at least `churned_after_days` before the as-of
    recall: float  # of those, share whose stage on the as-of date is churned
    precision: float  # of people we call churned, share truly churned by the as-of date
    median_lag_days: float  # our first churn date minus the true first churn date
    p90_abs_lag_days: float


def churn_quality(work_db: Path, truth_dir: Path, as_of: str,
                  churned_after_days: int) -> ChurnQuality:
    """The lifecycle stages' churn against the generator's latent churn dates.

    Truly churned on the as-of date: the person's (first or second) spell ended on or before
    it and no later spell was running. Detectable: that end lies at least
    `churned_after_days` before the as-of date (no rule can see churn sooner)."""
    people = Path(truth_dir) / "people-*.parquet"
    ids = Path(truth_dir) / "identities-*.parquet"
    with duckdb.connect(str(work_db), read_only=True) as con:
        row = con.execute(
            f"""
            WITH truth AS (
                SELECT p.person_id, 'u:' || i.identifier AS node_id,
                       CAST(p.churn_date AS DATE) AS churn_date,
                       CASE
                           WHEN p.second_churn_date IS NOT NULL
                               THEN CAST(p.second_churn_date AS DATE)
                           WHEN p.reactivation_date IS NOT NULL
                                AND CAST(p.reactivation_date AS DATE) <= DATE '{as_of}' THEN NULL
                           ELSE CAST(p.churn_date AS DATE)
                       END AS current_churn_date
                FROM read_parquet('{people}') p
                JOIN read_parquet('{ids}') i USING (person_id)
                WHERE i.identifier_type = 'user_id'
                  AND CAST(p.signup_date AS DATE) <= DATE '{as_of}'
            ),
            ours AS (
                SELECT m.node_id, s.lifecycle_stage = 'churned' AS is_churned,
                       (SELECT min(h.valid_from) FROM marts.user_lifecycle_history h
                        WHERE h.user_key = m.user_key AND h.lifecycle_stage = 'churned')
                           AS first_churned_on
                FROM intermediate.int_identity_map m
                JOIN intermediate.int_person_day_stage s
                  ON s.user_key = m.user_key AND s.day = DATE '{as_of}'
                WHERE m.node_type = 'user_id'
            ),
            joined AS (
                SELECT t.*, o.is_churned, o.first_churned_on,
                       t.current_churn_date IS NOT NULL
                           AND t.current_churn_date <= DATE '{as_of}' AS truly_churned,
                       t.current_churn_date IS NOT NULL
                           AND t.current_churn_date
                               <= DATE '{as_of}' - {int(churned_after_days)} AS detectable
                FROM truth t JOIN ours o USING (node_id)
            )
            SELECT
                count(*),
                count(*) FILTER (WHERE detectable),
                avg(CASE WHEN is_churned THEN 1.0 ELSE 0.0 END) FILTER (WHERE detectable),
                avg(CASE WHEN truly_churned THEN 1.0 ELSE 0.0 END) FILTER (WHERE is_churned),
                median(first_churned_on - churn_date)
                    FILTER (WHERE first_churned_on IS NOT NULL AND churn_date IS NOT NULL),
                quantile_cont(abs(first_churned_on - churn_date), 0.9)
                    FILTER (WHERE first_churned_on IS NOT NULL AND churn_date IS NOT NULL)
            FROM joined
            """
        ).fetchall()[0]
    return ChurnQuality(int(row[0]), int(row[1]), float(row[2] or 0), float(row[3] or 0),
                        float(row[4] or 0), float(row[5] or 0))
