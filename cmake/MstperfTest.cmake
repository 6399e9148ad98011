# mstperf_add_test(NAME <name> SOURCES <...> LIBS <...> [LABELS <...>] [TIMEOUT <s>])
#
# One GoogleTest binary registered as one ctest test. LABELS select the suite:
#   unit         pure logic, simulated clock, no sockets           (make test)
#   integration  real processes / sockets on loopback, port 0       (make test)
#   e2e          long end-to-end runs                               (make e2e)
#   bench        measurements                                       (make bench)
# Tests find the service binaries through the MSTPERF_BIN_DIR definition and test data
# through MSTPERF_TEST_DATA_DIR.
# A test's own sources compile at -O0: they are assertions and set-up, while the code under
# test (the libraries and service binaries they link or start) keeps the Release flags. That
# cuts the compile time of a test file by ~40% (gtest/gmock macros and nlohmann templates are
# costly to optimise), which is most of what a clean `make test` spends.
function(mstperf_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  set_target_properties(${T_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${MSTPERF_TEST_OUTPUT_DIR})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_options(${T_NAME} PRIVATE -O0)
  target_compile_definitions(${T_NAME} PRIVATE
    MSTPERF_BIN_DIR="${CMAKE_BINARY_DIR}/bin"
    MSTPERF_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
    MSTPERF_TEST_DATA_DIR="${CMAKE_SOURCE_DIR}/tests/data")
  add_test(NAME ${T_NAME} COMMAND ${T_NAME})
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT})
endfunction()
