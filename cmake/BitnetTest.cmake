# bitnet_add_check_test(NAME SOURCES src... LIBS lib... [LABELS l...])
# Builds one Check test program and registers it with CTest. With
# -DBITNET_TEST_WRAPPER="tool args" the program runs under that tool.
function(bitnet_add_check_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT CHECK_FOUND)
    message(FATAL_ERROR "Check (libcheck) is required for tests: run scripts/deps.sh")
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CHECK)
  if(BITNET_TEST_WRAPPER)
    # A tool that runs the test program (make test-valgrind: valgrind memcheck).
    separate_arguments(_wrapper UNIX_COMMAND "${BITNET_TEST_WRAPPER}")
    add_test(NAME ${name} COMMAND ${_wrapper} $<TARGET_FILE:${name}>)
  else()
    add_test(NAME ${name} COMMAND ${name})
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "unit;${T_LABELS}"
                       ENVIRONMENT "CK_DEFAULT_TIMEOUT=120")
endfunction()

# bitnet_add_script_test(NAME COMMAND cmd... [LABELS l...])
# Registers a shell-level test (contract and integration tests).
function(bitnet_add_script_test name)
  cmake_parse_arguments(T "" "" "COMMAND;LABELS" ${ARGN})
  add_test(NAME ${name} COMMAND ${T_COMMAND})
  set_tests_properties(${name} PROPERTIES LABELS "script;${T_LABELS}")
endfunction()
