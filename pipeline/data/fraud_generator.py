"""Embedded default data of the fraud domain: synthetic card transactions.

`generate_transactions(rows, seed)` returns one pandas DataFrame, one card transaction
per row, drawn from a single seeded numpy Generator (same `rows` and `seed` -> the same
table, byte for byte). Nothing is read from disk. The label column is `is_fraud` (0/1).

The generative story, in the order the draws are made
------------------------------------------------------
1. The customer. `sex` is female (51 %) or male; `age` is 18 + a Gamma(2.2, 12) draw,
   rounded and clipped to 18..90 (median 41, about 12 % aged 66+).
   The customer's typical spend (`customer_avg_amount_30d`) is log-normal and depends on
   both: highest for ages 36-55, lower for 18-25 and 66+, about 13 % higher for men.
2. How they pay. `channel` (online / in-store / atm) is drawn from an age- and
   sex-dependent softmax: customers 18-25 pay online about 73 % of the time, customers
   66+ about 17 % (they use shops, terminals and ATMs); men use ATMs and online a bit
   more. `device` follows the channel (mobile / desktop / tablet online, the older the
   customer the less mobile; "card terminal" in store; "atm"). `card_type` (debit /
   credit / prepaid) depends on age: prepaid cards are mostly held by the young,
   credit cards mostly by older customers.
3. What they buy. `merchant_category` is drawn from channel-specific weights, tilted by
   age (the young: entertainment, digital goods, restaurants; 66+: health, groceries)
   and by sex (women: health, retail; men: electronics, fuel). `amount` is log-normal
   around the customer's typical spend, shifted by category (travel and electronics
   cost most, digital goods least).
4. Context. `hour` (0-23) is a day-time bell with a night-time share that falls with
   age; `account_age_days` grows with age, with a small share of brand-new accounts
   (twice as common among the young); `txn_last_24h` is Poisson, higher for the young and
   online; `distance_from_home_km` is log-normal (far larger for travel), and
   `country_match` ("yes"/"no") is "no" mostly for travel and online purchases;
   `merchant_risk_score` (0-1) is a Beta draw, higher for digital goods and electronics.
5. Missing values, as they happen in real feeds: `distance_from_home_km` is missing for
   about 18 % of online transactions (no IP geolocation) and 0.5 % of the others;
   `merchant_risk_score` is missing for about 2.5 % of transactions (merchants too new to
   be scored, and somewhat riskier: a missing-value indicator carries signal).
6. The label. The log-odds of fraud is a sum of feature effects (amount far above the
   customer's usual spend, night hours, new accounts, bursts of transactions, distance,
   country mismatch, risky merchants, online / ATM channel, prepaid cards, electronics
   and digital goods), plus direct group effects that the transaction features do not
   show (customers 66+ are targeted by scams: +1.6 log-odds; 56-65: +0.7; men: +0.15),
   plus an unobserved N(0, 0.6) term. The distance used by the label is
   the true one, also where the recorded value is missing. The intercept is solved so
   that the mean probability is 2 %, then `is_fraud` is a Bernoulli draw.

With the default 24,000 rows and seed 0: 2.1 % fraud; by age band 18-25 3.2 %, 26-35
2.1 %, 36-45 1.4 %, 46-55 1.7 %, 56-65 2.4 %, 66+ 3.1 %; women 1.85 %, men 2.4 %.
So the data hold true group differences in base rates (highest for the oldest and the
youngest customers, the young through visible risk features such as new accounts,
prepaid cards and night-time bursts, the old through scams the features barely show; a
bit higher for men) and in feature distributions (channel, card type, category, amount by
age and sex), and a model that does not see age will under-detect fraud against older
customers: something real for the audit to find. The label is a noisy function of the
features, so a good model clearly beats the base rate without being perfect.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LABEL_COLUMN = "is_fraud"
SENSITIVE_COLUMNS = ("sex", "age")
TARGET_FRAUD_RATE = 0.02

CHANNELS = ("online", "in-store", "atm")
CATEGORIES = (
    "grocery", "restaurant", "fuel", "retail", "health", "electronics",
    "travel", "entertainment", "digital goods", "cash withdrawal",
)
CARD_TYPES = ("debit", "credit", "prepaid")

# Category weights per channel (rows: online, in-store, atm; columns: CATEGORIES).
_CHANNEL_CATEGORY_WEIGHTS = np.array([
    [0.5, 0.6, 0.0, 3.0, 0.4, 1.5, 1.0, 1.2, 1.5, 0.0],
    [4.0, 2.5, 2.0, 2.5, 1.0, 0.5, 0.2, 0.6, 0.0, 0.0],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
])
_YOUNG_CATEGORY = np.array([1.0, 1.3, 1.0, 1.0, 0.5, 1.1, 0.8, 1.8, 1.8, 1.0])
_SENIOR_CATEGORY = np.array([1.3, 1.0, 1.0, 1.0, 2.5, 0.7, 1.2, 0.5, 0.3, 1.0])
_FEMALE_CATEGORY = np.array([1.0, 1.0, 0.8, 1.25, 1.3, 0.7, 1.0, 1.0, 1.0, 1.0])
_MALE_CATEGORY = np.array([1.0, 1.0, 1.2, 1.0, 1.0, 1.3, 1.0, 1.0, 1.0, 1.0])
# log-amount offset per category, relative to the customer's typical spend
_CATEGORY_AMOUNT = np.array([0.2, -0.1, 0.3, 0.3, 0.2, 1.2, 1.6, 0.0, -0.6, 0.8])
_CATEGORY_RISK = np.array([0.0, 0.0, 0.0, 0.02, 0.0, 0.10, 0.05, 0.02, 0.15, 0.0])
# fraud log-odds per category
_CATEGORY_FRAUD = np.array([-0.4, 0.0, -0.1, 0.0, -0.3, 0.5, 0.3, 0.0, 0.6, 0.2])


def _categorical(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One index per row, drawn from the row's (unnormalised) weights."""
    cumulative = np.cumsum(weights, axis=1)
    cumulative /= cumulative[:, -1:]
    u = rng.random(weights.shape[0])[:, None]
    return np.minimum((u > cumulative).sum(axis=1), weights.shape[1] - 1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _solve_intercept(logit: np.ndarray, target: float) -> float:
    """The constant c with mean(sigmoid(logit + c)) == target (bisection, deterministic)."""
    lo, hi = -30.0, 30.0
    for _ in range(80):
        mid = (lo + hi) / 2.0
        if _sigmoid(logit + mid).mean() > target:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2.0


def generate_transactions(rows: int = 24000, seed: int = 0) -> pd.DataFrame:
    """Synthetic card transactions with an `is_fraud` label; see the module docstring.

    One function on purpose: every column is drawn from one seeded stream in a fixed order,
    and the numbered steps read top to bottom as the module docstring tells them; split
    into helpers, the order of the draws would be spread over many signatures.
    """
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    n = int(rows)
    rng = np.random.default_rng(seed)

    # 1. the customer
    female = rng.random(n) < 0.51
    male = ~female
    age = np.clip(np.rint(18.0 + rng.gamma(2.2, 12.0, n)), 18, 90).astype(np.int64)
    young = age <= 25
    prime = (age >= 36) & (age <= 55)
    late = (age >= 56) & (age <= 65)
    senior = age >= 66
    log_avg = (3.6 + 0.25 * prime - 0.2 * young - 0.25 * senior + 0.12 * male
               + rng.normal(0.0, 0.35, n))

    # 2. how they pay
    channel_logits = np.stack([
        0.3 - 0.045 * (age - 40) + 0.1 * male,     # online
        np.zeros(n),                               # in-store
        -1.6 + 0.012 * (age - 40) + 0.2 * male,    # atm
    ], axis=1)
    channel = _categorical(rng, np.exp(channel_logits))
    online, in_store, atm = channel == 0, channel == 1, channel == 2

    p_mobile = _sigmoid(1.2 - 0.06 * (age - 40))
    u = rng.random(n)
    device = np.where(u < p_mobile, "mobile", np.where(u < p_mobile + (1 - p_mobile) * 0.7, "desktop", "tablet"))
    device = np.where(in_store, "card terminal", np.where(atm, "atm", device))

    card_weights = np.where(young[:, None], [0.60, 0.25, 0.15],
                            np.where(senior[:, None], [0.35, 0.62, 0.03], [0.45, 0.50, 0.05]))
    card = _categorical(rng, card_weights)

    # 3. what they buy
    weights = _CHANNEL_CATEGORY_WEIGHTS[channel].copy()
    weights *= np.where(young[:, None], _YOUNG_CATEGORY, 1.0)
    weights *= np.where(senior[:, None], _SENIOR_CATEGORY, 1.0)
    weights *= np.where(female[:, None], _FEMALE_CATEGORY, _MALE_CATEGORY)
    category = _categorical(rng, weights)
    log_amount = log_avg + _CATEGORY_AMOUNT[category] + rng.normal(0.0, 0.7, n)
    amount = np.maximum(np.round(np.exp(log_amount), 2), 0.5)
    avg_amount = np.round(np.exp(log_avg), 2)

    # 4. context
    day_hour = np.where(online, rng.normal(15.0, 5.0, n), rng.normal(14.0, 3.5, n))
    p_night = np.where(young, 0.10, np.where(senior, 0.025, 0.05))
    night_draw = rng.random(n) < p_night
    hour = np.where(night_draw, rng.integers(0, 6, n), np.rint(day_hour)).astype(np.int64) % 24
    night = hour <= 5

    years = (age - 17) * rng.beta(1.6, 2.2, n)
    account_age = np.maximum(1, np.floor(years * 365.0)).astype(np.int64)
    brand_new = rng.random(n) < np.where(young, 0.08, 0.035)
    account_age = np.where(brand_new, rng.integers(1, 60, n), account_age)

    txn_24h = rng.poisson(1.2 + 1.0 * young + 0.6 * online - 0.4 * senior).astype(np.int64)

    travel = category == CATEGORIES.index("travel")
    median_km = np.where(online, 8.0, np.where(atm, 3.0, 5.0)) * np.where(travel, 10.0, 1.0)
    true_distance = np.exp(np.log(median_km) + rng.normal(0.0, np.where(online, 1.3, 0.9)))
    distance = np.round(true_distance, 1)
    distance_missing = rng.random(n) < np.where(online, 0.18, 0.005)

    p_abroad = np.where(travel, 0.25, np.where(online, 0.05, 0.02))
    abroad = rng.random(n) < p_abroad

    risk = np.clip(rng.beta(2.0, 9.0, n) + _CATEGORY_RISK[category], 0.0, 1.0)
    risk = np.round(risk, 3)
    new_merchant = rng.random(n) < 0.025

    # 6. the label
    ratio = np.clip(np.log(amount / avg_amount), -2.0, 4.0)
    logit = (
        1.5 * ratio
        + 1.6 * night
        + 2.0 * (account_age < 60) + 0.5 * (account_age < 365)
        + 0.35 * np.maximum(txn_24h - 2, 0)
        + 0.5 * np.log1p(true_distance / 50.0)
        + 2.5 * abroad
        + 5.0 * (risk - 0.18) + 0.5 * new_merchant
        + 0.6 * online + 0.3 * atm
        + np.select([card == 2, card == 1], [0.7, 0.2], 0.0)
        + _CATEGORY_FRAUD[category]
        + 1.6 * senior + 0.7 * late + 0.15 * male
        + rng.normal(0.0, 0.6, n)
    )
    p = _sigmoid(logit + _solve_intercept(logit, TARGET_FRAUD_RATE))
    is_fraud = (rng.random(n) < p).astype(np.int64)

    # 5. missing values (after the label: the label used the true values)
    distance_col = np.where(distance_missing, np.nan, distance)
    risk_col = np.where(new_merchant, np.nan, risk)

    frame = pd.DataFrame({
        "amount": amount,
        "customer_avg_amount_30d": avg_amount,
        "hour": hour,
        "merchant_category": np.asarray(CATEGORIES, dtype=object)[category],
        "channel": np.asarray(CHANNELS, dtype=object)[channel],
        "device": device.astype(object),
        "card_type": np.asarray(CARD_TYPES, dtype=object)[card],
        "country_match": np.where(abroad, "no", "yes").astype(object),
        "distance_from_home_km": distance_col,
        "merchant_risk_score": risk_col,
        "account_age_days": account_age,
        "txn_last_24h": txn_24h,
        "sex": np.where(female, "female", "male").astype(object),
        "age": age,
        LABEL_COLUMN: is_fraud,
    })
    for column in ("merchant_category", "channel", "device", "card_type", "country_match", "sex"):
        frame[column] = frame[column].astype(str)
    return frame
