/* placeholder: the ChannelClient lands here */
typedef int sl__client_placeholder;
