"""Pure algorithms over numpy/torch arrays; nothing here imports FiftyOne."""

# numba's on-disk cache records the module name of each kernel, and a process
# that imports the kernels under another name would fail to load it. So cache
# only under the plugin's stable package name (see the plugin's package()).
KERNEL_CACHE = __name__ == "coreset_curation.core"
