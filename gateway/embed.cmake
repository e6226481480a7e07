# Turns the file IN into a C source OUT defining NAME[] and NAME_len (gw_embed in
# CMakeLists.txt), so the node needs none of its static files at run time.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(RELATIVE_PATH src ${CMAKE_CURRENT_LIST_DIR}/.. ${IN})
file(WRITE ${OUT} "/* Generated from ${src} by embed.cmake. Do not edit. */\n"
  "#include <stddef.h>\n"
  "extern const unsigned char ${NAME}[];\n"
  "extern const size_t ${NAME}_len;\n"
  "const unsigned char ${NAME}[] = {${bytes}0x00};\n"
  "const size_t ${NAME}_len = ${len};\n")
