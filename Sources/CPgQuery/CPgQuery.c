// SwiftPM needs one C source file per C target; the API lives in the header.
#include "CPgQuery.h"
