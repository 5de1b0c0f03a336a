/* fuzz_sfv's second build of the structured-field parser: security/sfv.c itself, compiled with
 * SL__SFV_SCALAR so that it takes the plain C paths other machines take instead of the SSE2 ones
 * (x86-64), its public names renamed scalar_sfv_* to link beside the first build. fuzz_sfv checks
 * both against the oracle. */
#define SL__SFV_SCALAR 1
#define sl__sfv_item_clear scalar_sfv_item_clear
#define sl__sfv_dict_clear scalar_sfv_dict_clear
#define sl__sfv_b64_decode scalar_sfv_b64_decode
#define sl__sfv_parse_dict scalar_sfv_parse_dict
#define sl__sfv_parse_dict_in scalar_sfv_parse_dict_in
#define sl__sfv_parse_list scalar_sfv_parse_list
#define sl__sfv_parse_item scalar_sfv_parse_item
#define sl__sfv_dict_get scalar_sfv_dict_get
#define sl__sfv_param_get scalar_sfv_param_get
#define sl__sfv_dict_has_dups scalar_sfv_dict_has_dups
#define sl__sfv_params_have_dups scalar_sfv_params_have_dups
#define sl__sfv_serialize_item scalar_sfv_serialize_item
#include "security/sfv.c"
