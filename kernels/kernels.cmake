# The kernels this tree carries, one bitnet_add_kernel() per registry id
# (see kernels/CMakeLists.txt for the contract).
