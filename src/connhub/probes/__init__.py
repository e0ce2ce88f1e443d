"""Live access to customers' databases: one module per engine behind `probes.base.Probe`."""
