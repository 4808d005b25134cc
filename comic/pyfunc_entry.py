"""MLflow models-from-code entry: `mlflow.pyfunc.log_model(python_model=<this file>)` stores this code, not
a pickle, so loading the model never unpickles a Python object."""

import mlflow.models

from comic.serving import ComicModel

mlflow.models.set_model(ComicModel())
