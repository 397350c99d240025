"""sim: the SimPy capacity model of the seed's design at full scale (1M+ viewers).

`sim.scenario` loads the scenario files shared with loadtest/ and chaos/; `sim.estimate` is
the seed's back-of-envelope; `sim.model` + `sim.runner` run the model with replications and
SLO verdicts; `sim.report` writes reports/<scenario>/; `sim.cli` is what `streamscale
estimate` and `streamscale sim` call.
"""
