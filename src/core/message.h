/* Deep copies of the public message and channel-info structs, for engines and transports that hand
 * out copies of what they keep. The matching release functions (sl_message_clear,
 * sl_message_list_free, sl_channel_info_clear, sl_channel_infos_free) are public, in sluice.h. */
#ifndef SLUICE_CORE_MESSAGE_H
#define SLUICE_CORE_MESSAGE_H

#include <sluice/sluice.h>

/* Overwrites *dst with a deep copy of *src (NULL strings stay NULL). SL_OK, or SL_ENOMEM with *dst
 * zeroed. dst's previous contents are not freed. */
int sl__message_copy(sl_message *dst, const sl_message *src);
/* Same for channel infos. */
int sl__channel_info_copy(sl_channel_info *dst, const sl_channel_info *src);

/* A fresh stream epoch: 16 random lowercase hex digits. */
void sl__epoch_new(char out[17]);

/* Message ids, as every engine writes them: a channel's sequence number (1, 2, 3...) as 16
 * lowercase hex digits. Real-time transports use the number as the stream offset. */
#define SL__MSGID_LEN 16
/* The longest idempotency key (sl_write.idempotency_key), and the longest correlation_id,
 * reply_to and recipient_id (1..255 bytes each, checked by the channel API for every transport). */
#define SL__IDEMPOTENCY_KEY_MAX 255
#define SL__ENVELOPE_FIELD_MAX 255
void sl__msgid_format(uint64_t seq, char out[SL__MSGID_LEN + 1]);
/* Exactly the ids sl__msgid_format writes: 1 with *seq, else 0 (*seq untouched). */
int sl__msgid_parse(const char *id, uint64_t *seq);

#endif
