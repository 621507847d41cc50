# Decides whether the CUDA backend library is built. CUDA never reaches the
# daemon or the CLI: only libbitnet-cuda.so links it (DESIGN.md section 6).
set(BITNET_CUDA_ENABLED OFF)
set(BITNET_CUDA_REASON "")
if(BITNET_CUDA STREQUAL "OFF")
  set(BITNET_CUDA_REASON "disabled by BITNET_CUDA=OFF")
else()
  find_program(BITNET_NVCC nvcc HINTS "$ENV{CUDA_HOME}/bin" /usr/local/cuda/bin)
  if(BITNET_NVCC)
    execute_process(COMMAND "${BITNET_NVCC}" --version OUTPUT_VARIABLE _nvcc_out ERROR_QUIET)
    string(REGEX MATCH "release [0-9]+\\.[0-9]+" _nvcc_rel "${_nvcc_out}")
    set(BITNET_CUDA_ENABLED ON)
    set(BITNET_CUDA_REASON "nvcc ${_nvcc_rel} at ${BITNET_NVCC}")
    # The i2s_qk256.cuda kernels (kernels/cuda/) carry the CUDA runtime
    # statically, so their library needs no libcudart at run time.
    get_filename_component(_cuda_root "${BITNET_NVCC}" DIRECTORY)
    get_filename_component(_cuda_root "${_cuda_root}" DIRECTORY)
    find_library(BITNET_CUDART_STATIC cudart_static
                 HINTS "${_cuda_root}/lib64" "${_cuda_root}/targets/x86_64-linux/lib"
                       "${_cuda_root}/targets/sbsa-linux/lib")
    if(BITNET_CUDART_STATIC)
      set(BITNET_CUDA_KERNELS_REASON "i2s_qk256.cuda in libbitnet-kernels-cuda.so")
    else()
      set(BITNET_CUDA_KERNELS_REASON "no libcudart_static.a beside nvcc: i2s_qk256.cuda not built")
    endif()
  else()
    set(BITNET_CUDA_REASON "nvcc not found (set CUDA_HOME or put nvcc on PATH)")
    if(BITNET_CUDA STREQUAL "ON")
      message(FATAL_ERROR "BITNET_CUDA=ON but ${BITNET_CUDA_REASON}")
    endif()
  endif()
endif()
