# Install rules for the library: headers, libprocpool.a, and a package config so that
# `find_package(procpool CONFIG)` gives consumers the target procpool::procpool.
include(CMakePackageConfigHelpers)

set(PROCPOOL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/procpool)

install(TARGETS procpool EXPORT procpoolTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
# The public headers, pool API and wire building blocks alike; pool/src stays private.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/pool/include/procpool
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp")
install(EXPORT procpoolTargets NAMESPACE procpool:: DESTINATION ${PROCPOOL_CMAKE_DIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/procpoolConfig.cmake.in
  ${PROJECT_BINARY_DIR}/procpoolConfig.cmake
  INSTALL_DESTINATION ${PROCPOOL_CMAKE_DIR})
# 0.x: a minor release may change the API, so only the same minor version is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/procpoolConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/procpoolConfig.cmake
  ${PROJECT_BINARY_DIR}/procpoolConfigVersion.cmake
  DESTINATION ${PROCPOOL_CMAKE_DIR})
