"""Nodes of the Kedro "spaceflights" tutorial: a price model for space shuttles.

Plain functions of DataFrames, as in Kedro; the Datafile wires them together.
"""
from __future__ import annotations

import pandas as pd


def _is_true(x: pd.Series) -> pd.Series:
    return x == "t"


def _parse_percentage(x: pd.Series) -> pd.Series:
    return x.str.replace("%", "").astype(float) / 100


def _parse_money(x: pd.Series) -> pd.Series:
    return x.str.replace("$", "").str.replace(",", "").astype(float)


def preprocess_companies(companies: pd.DataFrame) -> pd.DataFrame:
    """Parse the rating percentages and the IATA flag."""
    companies = companies.copy()
    companies["iata_approved"] = _is_true(companies["iata_approved"])
    companies["company_rating"] = _parse_percentage(companies["company_rating"])
    return companies


def preprocess_shuttles(shuttles: pd.DataFrame) -> pd.DataFrame:
    """Parse the check flags and the price."""
    shuttles = shuttles.copy()
    shuttles["d_check_complete"] = _is_true(shuttles["d_check_complete"])
    shuttles["moon_clearance_complete"] = _is_true(shuttles["moon_clearance_complete"])
    shuttles["price"] = _parse_money(shuttles["price"])
    return shuttles


def create_model_input_table(shuttles: pd.DataFrame, companies: pd.DataFrame,
                             reviews: pd.DataFrame) -> pd.DataFrame:
    """One row per shuttle, with its company and its reviews."""
    rated = shuttles.merge(reviews, left_on="id", right_on="shuttle_id")
    rated = rated.drop("id", axis=1)
    table = rated.merge(companies, left_on="company_id", right_on="id")
    return table.dropna().reset_index(drop=True)


def split_data(data: pd.DataFrame, features: list[str], test_size: float,
               random_state: int):
    """Features and price, split into a training and a test set."""
    from sklearn.model_selection import train_test_split

    X = data[features]
    y = data["price"]
    return train_test_split(X, y, test_size=test_size, random_state=random_state)


def train_model(X_train: pd.DataFrame, y_train: pd.Series):
    """A linear regression of the price on the features."""
    from sklearn.linear_model import LinearRegression

    regressor = LinearRegression()
    regressor.fit(X_train, y_train)
    return regressor


def evaluate_model(regressor, X_test: pd.DataFrame, y_test: pd.Series) -> dict[str, float]:
    """R², mean absolute error and maximum error on the test set."""
    from sklearn.metrics import max_error, mean_absolute_error, r2_score

    y_pred = regressor.predict(X_test)
    return {
        "r2": float(r2_score(y_test, y_pred)),
        "mae": float(mean_absolute_error(y_test, y_pred)),
        "max_error": float(max_error(y_test, y_pred)),
        "test_rows": int(len(y_test)),
    }


def plot_residuals(regressor, X_test: pd.DataFrame, y_test: pd.Series):
    """Predicted against actual prices, and the residuals' distribution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_pred = regressor.predict(X_test)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.scatter(y_test, y_pred, s=4, alpha=0.4)
    lo, hi = float(y_test.min()), float(y_test.max())
    ax1.plot([lo, hi], [lo, hi], color="black", linewidth=1)
    ax1.set_xlabel("actual price")
    ax1.set_ylabel("predicted price")
    ax2.hist(y_test - y_pred, bins=60)
    ax2.set_xlabel("residual (actual - predicted)")
    ax2.set_ylabel("shuttles")
    fig.tight_layout()
    return fig
