"""Running scripts on a Dask cluster (EXECUTOR=dask): the service dispatches, workers run.

- `dispatch`: the service's side. Each run becomes one Dask task; admission follows the cluster's
  capacity; a lost worker, a missing cluster and a lost scheduler become clear errors.
- `worker`: the worker's side (`gitscripts worker`). The same runtime as the service's own
  (`executor.service.ExecutionService`: checkout cache, warm fork server, sandbox, limits), fed
  with trees from the service (`trees`, `routes`) and reaching the file API through the service.
- `jobs`: what one carries to the other. `commands`: `gitscripts worker` and `gitscripts cluster`.

The service stays the only writer of the repository, the index and the run log; a worker holds no
secret of the service's (only its own worker credential, which its runs cannot read).
"""
