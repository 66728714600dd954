"""Quantitative finance on the SDE engine: models, closed forms and a streaming Monte Carlo pricer.

* :mod:`~sdeflow.finance.models`: GBM, MultiGBM (correlated), Heston (full truncation), SABR, CIR, OU.
* :mod:`~sdeflow.finance.analytic`: Black-Scholes price and Greeks, CIR bond, OU moments, Heston
  semi-analytic price (characteristic function), Black-Scholes implied volatility, Hagan's SABR
  implied-volatility approximation.
* :mod:`~sdeflow.finance.payoffs`: European, Asian, Barrier, ZeroCouponBond.
* :func:`~sdeflow.finance.price`: Monte Carlo in chunks with float64 accumulation, confidence
  interval, antithetic variates and pathwise Greeks.
"""

from .analytic import black_scholes, black_scholes_greeks, cir_bond, heston_price, implied_vol, ou_moments, sabr_implied_vol
from .models import CIR, GBM, SABR, Heston, MultiGBM, OrnsteinUhlenbeck
from .montecarlo import MCResult, price
from .payoffs import Asian, Barrier, European, ZeroCouponBond

__all__ = [
    "Asian", "Barrier", "CIR", "European", "GBM", "Heston", "MCResult", "MultiGBM", "OrnsteinUhlenbeck", "SABR",
    "ZeroCouponBond", "black_scholes", "black_scholes_greeks", "cir_bond", "heston_price", "implied_vol", "ou_moments",
    "price", "sabr_implied_vol",
]
