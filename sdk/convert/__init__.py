"""Convert a plan into a deployable bundle: int8 edge TFLite, float cloud model, manifest; verified."""

from splitsdk.convert.convert import ConvertReport, convert_plan
from splitsdk.convert.verify import Verification, split_pipeline
from splitsdk.errors import ConvertError

__all__ = ["ConvertError", "ConvertReport", "Verification", "convert_plan", "split_pipeline"]
