# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Spaceflights: how good is the price model?
#
# The linear regression of shuttle prices, evaluated on the test set it never saw.
# datamake defines `regressor`, `X_test` and `y_test` before the first cell; to run
# this notebook by hand in Jupyter, load them first, e.g.
# `regressor = datamake.load("regressor")`.

# %%
import matplotlib.pyplot as plt
import pandas as pd
from sklearn.metrics import max_error, mean_absolute_error, r2_score

y_pred = regressor.predict(X_test)
residuals = y_test - y_pred

# %% [markdown]
# ## Metrics
#
# R² is the share of the price variance the model explains; the errors are in the
# prices' unit.

# %%
metrics = {
    "r2": float(r2_score(y_test, y_pred)),
    "mae": float(mean_absolute_error(y_test, y_pred)),
    "max_error": float(max_error(y_test, y_pred)),
    "test_rows": int(len(y_test)),
}
pd.Series(metrics, name="value").to_frame()

# %% [markdown]
# ## Predicted against actual prices
#
# Points on the diagonal are priced right; the histogram shows how far off the rest are.

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
ax1.scatter(y_test, y_pred, s=4, alpha=0.4)
lo, hi = float(y_test.min()), float(y_test.max())
ax1.plot([lo, hi], [lo, hi], color="black", linewidth=1)
ax1.set_xlabel("actual price")
ax1.set_ylabel("predicted price")
ax2.hist(residuals, bins=60)
ax2.set_xlabel("residual (actual - predicted)")
ax2.set_ylabel("shuttles")
fig.tight_layout()

# %% [markdown]
# ## Which features weigh most
#
# The model's coefficients, largest effect first.

# %%
coefficients = pd.Series(regressor.coef_, index=X_test.columns, name="coefficient")
coefficients.sort_values(key=abs, ascending=False).to_frame()
