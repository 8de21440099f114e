// Every GGUF metadata key owl reads or writes, named once. Spellings follow llama.cpp
// (gguf-py/gguf/constants.py, src/llama-arch.cpp); per-architecture keys are
// "<general.architecture>.<suffix>", built with arch_key().
#pragma once

#include <string>
#include <string_view>

namespace owl::gguf::keys {

// ---- general.* -------------------------------------------------------------------------------
inline constexpr const char* kGeneralArchitecture = "general.architecture";
inline constexpr const char* kGeneralName = "general.name";
inline constexpr const char* kGeneralLicense = "general.license";
inline constexpr const char* kGeneralType = "general.type";  // "imatrix" for importance matrices
inline constexpr const char* kGeneralAlignment = "general.alignment";
inline constexpr const char* kGeneralFileType = "general.file_type";  // gguf/file_type.h
inline constexpr const char* kGeneralQuantizationVersion = "general.quantization_version";

// ---- per architecture: arch_key(arch, suffix) ------------------------------------------------
inline constexpr const char* kContextLength = "context_length";
inline constexpr const char* kEmbeddingLength = "embedding_length";
inline constexpr const char* kBlockCount = "block_count";
inline constexpr const char* kFeedForwardLength = "feed_forward_length";
inline constexpr const char* kHeadCount = "attention.head_count";
inline constexpr const char* kHeadCountKv = "attention.head_count_kv";
inline constexpr const char* kKeyLength = "attention.key_length";
inline constexpr const char* kValueLength = "attention.value_length";
inline constexpr const char* kLayerNormRmsEpsilon = "attention.layer_norm_rms_epsilon";
inline constexpr const char* kSlidingWindow = "attention.sliding_window";
inline constexpr const char* kRopeDimensionCount = "rope.dimension_count";
inline constexpr const char* kRopeFreqBase = "rope.freq_base";
inline constexpr const char* kRopeFreqBaseSwa = "rope.freq_base_swa";
inline constexpr const char* kRopeScalingType = "rope.scaling.type";
inline constexpr const char* kRopeScalingFactor = "rope.scaling.factor";
inline constexpr const char* kAttnLogitSoftcapping = "attn_logit_softcapping";
inline constexpr const char* kFinalLogitSoftcapping = "final_logit_softcapping";
inline constexpr const char* kPoolingType = "pooling_type";  // 0 none, 1 mean, 2 cls, 3 last (llama.cpp's)

// "llama", kContextLength -> "llama.context_length"
inline std::string arch_key(std::string_view arch, std::string_view suffix) {
  std::string key(arch);
  key += '.';
  key += suffix;
  return key;
}

// ---- tokenizer.* -----------------------------------------------------------------------------
inline constexpr const char* kTokenizerPrefix = "tokenizer.";  // every tokenizer key starts so
inline constexpr const char* kTokenizerModel = "tokenizer.ggml.model";
inline constexpr const char* kTokenizerPre = "tokenizer.ggml.pre";
inline constexpr const char* kTokenizerTokens = "tokenizer.ggml.tokens";
inline constexpr const char* kTokenizerScores = "tokenizer.ggml.scores";
inline constexpr const char* kTokenizerTokenType = "tokenizer.ggml.token_type";
inline constexpr const char* kTokenizerMerges = "tokenizer.ggml.merges";
inline constexpr const char* kTokenizerBosId = "tokenizer.ggml.bos_token_id";
inline constexpr const char* kTokenizerEosId = "tokenizer.ggml.eos_token_id";
inline constexpr const char* kTokenizerEotId = "tokenizer.ggml.eot_token_id";
inline constexpr const char* kTokenizerEomId = "tokenizer.ggml.eom_token_id";
inline constexpr const char* kTokenizerUnknownId = "tokenizer.ggml.unknown_token_id";
inline constexpr const char* kTokenizerSeparatorId = "tokenizer.ggml.seperator_token_id";  // sic, as llama.cpp
inline constexpr const char* kTokenizerPaddingId = "tokenizer.ggml.padding_token_id";
inline constexpr const char* kTokenizerMaskId = "tokenizer.ggml.mask_token_id";
inline constexpr const char* kTokenizerFimPreId = "tokenizer.ggml.fim_pre_token_id";
inline constexpr const char* kTokenizerFimSufId = "tokenizer.ggml.fim_suf_token_id";
inline constexpr const char* kTokenizerFimMidId = "tokenizer.ggml.fim_mid_token_id";
inline constexpr const char* kTokenizerFimPadId = "tokenizer.ggml.fim_pad_token_id";
inline constexpr const char* kTokenizerFimRepId = "tokenizer.ggml.fim_rep_token_id";
inline constexpr const char* kTokenizerFimSepId = "tokenizer.ggml.fim_sep_token_id";
// Deprecated names of the FIM ids, still read.
inline constexpr const char* kTokenizerPrefixId = "tokenizer.ggml.prefix_token_id";
inline constexpr const char* kTokenizerSuffixId = "tokenizer.ggml.suffix_token_id";
inline constexpr const char* kTokenizerMiddleId = "tokenizer.ggml.middle_token_id";
inline constexpr const char* kTokenizerAddBos = "tokenizer.ggml.add_bos_token";
inline constexpr const char* kTokenizerAddEos = "tokenizer.ggml.add_eos_token";
inline constexpr const char* kTokenizerAddSpacePrefix = "tokenizer.ggml.add_space_prefix";
// The default template; named ones are "tokenizer.chat_template.<name>".
inline constexpr const char* kTokenizerChatTemplate = "tokenizer.chat_template";

// ---- split files (llama-gguf-split), which quantize drops ------------------------------------
inline constexpr const char* kSplitNo = "split.no";
inline constexpr const char* kSplitCount = "split.count";
inline constexpr const char* kSplitTensorsCount = "split.tensors.count";

// ---- importance matrices: the imatrix file, and what quantize records of the one it used ------
inline constexpr const char* kImatrixDatasets = "imatrix.datasets";
inline constexpr const char* kImatrixChunkCount = "imatrix.chunk_count";
inline constexpr const char* kImatrixChunkSize = "imatrix.chunk_size";
inline constexpr const char* kQuantizeImatrixFile = "quantize.imatrix.file";
inline constexpr const char* kQuantizeImatrixDataset = "quantize.imatrix.dataset";
inline constexpr const char* kQuantizeImatrixEntriesCount = "quantize.imatrix.entries_count";
inline constexpr const char* kQuantizeImatrixChunksCount = "quantize.imatrix.chunks_count";

}  // namespace owl::gguf::keys
