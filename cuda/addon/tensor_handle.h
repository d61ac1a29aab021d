// NativeTensor: the JavaScript handle of a TensorView. Releasing it drops this handle's reference
// only; queued work keeps its own.
#pragma once
#include <napi.h>

#include "../core/storage.h"

namespace sparq {

class NativeTensor : public Napi::ObjectWrap<NativeTensor> {
 public:
  static Napi::Function define(Napi::Env env);
  static Napi::Object wrap(Napi::Env env, TensorView view);

  explicit NativeTensor(const Napi::CallbackInfo& info);
  bool released() const { return released_; }
  const TensorView& view() const { return view_; }

 private:
  Napi::Value get_dtype(const Napi::CallbackInfo& info);
  Napi::Value get_shape(const Napi::CallbackInfo& info);
  Napi::Value get_device(const Napi::CallbackInfo& info);
  Napi::Value get_disposed(const Napi::CallbackInfo& info);
  Napi::Value release(const Napi::CallbackInfo& info);
  Napi::Value reshape(const Napi::CallbackInfo& info);
  Napi::Value slice(const Napi::CallbackInfo& info);
  void check_alive(const std::string& op) const;

  TensorView view_;
  bool released_ = true;  // constructed from JavaScript directly: an empty, unusable handle
};

}  // namespace sparq
