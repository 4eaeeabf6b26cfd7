"""Builds the cffi extension `splitsdk._native`; all other metadata lives in pyproject.toml."""

from setuptools import setup

setup(cffi_modules=["sdk/native/build_cffi.py:ffibuilder"])
