"""Toolchain work for the edge: the armhf sysroot, the cross build, running tools, QEMU and `verify`.

`codegen` renders the edge project; this package takes it on from there (`build_firmware`, `emulate`,
`verify`), and the camera image builder uses the same sysroot and tool runner.
"""
