// podnet native addon: only the syscalls Node lacks. No logic lives here.
#include <napi.h>

namespace {

Napi::Value AddonInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("addonInfo", Napi::Function::New(env, AddonInfo, "addonInfo"));
  return exports;
}

}  // namespace

NODE_API_MODULE(podnet_native, Init)
