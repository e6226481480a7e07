# Turns the file IN into a C source OUT defining gw_demo_page / gw_demo_page_len.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* Generated from gateway/static/index.html by embed.cmake. Do not edit. */\n"
  "#include <stddef.h>\n"
  "extern const unsigned char gw_demo_page[];\n"
  "extern const size_t gw_demo_page_len;\n"
  "const unsigned char gw_demo_page[] = {${bytes}0x00};\n"
  "const size_t gw_demo_page_len = ${len};\n")
