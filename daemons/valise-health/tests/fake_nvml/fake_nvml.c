/* A test double of libnvidia-ml.so.1 for tests/nvml.rs: the test machines have no NVIDIA GPU,
 * so this stands in for the driver's NVML, and for nothing else. It exports exactly the entry
 * points nvml-wrapper calls for valise-health's readings (gpu.rs): nvmlInit_v2 and
 * nvmlSystemGetDriverVersion (Nvml::init), nvmlShutdown (Nvml's Drop, which panics if it is
 * missing), nvmlDeviceGetCount_v2, nvmlDeviceGetHandleByIndex_v2, the four figures, and
 * nvmlErrorString. nvml-wrapper resolves every symbol lazily (each is a Result until called),
 * so the others need not exist.
 *
 * One GPU with fixed figures: 37 % busy, 1 GiB of 80 GiB used, 61 °C, 123456 mW. Built with
 *   -DFAKE_INIT_FAILS   nvmlInit_v2 says NVML_ERROR_DRIVER_NOT_LOADED
 *   -DFAKE_NO_POWER     nvmlDeviceGetPowerUsage says NVML_ERROR_NOT_SUPPORTED
 *   -DFAKE_HANG_MS=n    the first nvmlDeviceGetUtilizationRates takes n ms (a wedged driver)
 * The arguments are checked as the real library does (device index, sensor, the memory
 * structure's version), so a wrong call shows as a missing figure.
 */
#include <stddef.h>
#include <string.h>
#include <time.h>

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
};

struct nvmlDevice_st { int index; };
typedef struct nvmlDevice_st *nvmlDevice_t;

typedef struct { unsigned int gpu; unsigned int memory; } nvmlUtilization_t;
typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;

#define NVML_TEMPERATURE_GPU 0
#define GIB (1024ULL * 1024ULL * 1024ULL)

static struct nvmlDevice_st device0 = { 0 };
static int initialised = 0;

nvmlReturn_t nvmlInit_v2(void) {
#ifdef FAKE_INIT_FAILS
    return NVML_ERROR_DRIVER_NOT_LOADED;
#else
    initialised++;
    return NVML_SUCCESS;
#endif
}

nvmlReturn_t nvmlShutdown(void) {
    if (initialised == 0) return NVML_ERROR_UNINITIALIZED;
    initialised--;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    const char *v = "550.54.15";
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (version == NULL || length < strlen(v) + 1) return NVML_ERROR_INVALID_ARGUMENT;
    strcpy(version, v);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *count = 1;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (index != 0 || device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &device0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *u) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (device != &device0 || u == NULL) return NVML_ERROR_INVALID_ARGUMENT;
#ifdef FAKE_HANG_MS
    static int hung = 0;
    if (!hung) {
        struct timespec t = { FAKE_HANG_MS / 1000, (FAKE_HANG_MS % 1000) * 1000000L };
        hung = 1;
        nanosleep(&t, NULL);
    }
#endif
    u->gpu = 37;
    u->memory = 12;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *m) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (device != &device0 || m == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    /* NVML_STRUCT_VERSION(Memory, 2) */
    if (m->version != (unsigned int)(sizeof(nvmlMemory_v2_t) | (2u << 24)))
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    m->total = 80 * GIB;
    m->reserved = 512ULL * 1024 * 1024;
    m->used = 1 * GIB;
    m->free = m->total - m->reserved - m->used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int *temp) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (device != &device0 || sensor != NVML_TEMPERATURE_GPU || temp == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *temp = 61;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (device != &device0 || power == NULL) return NVML_ERROR_INVALID_ARGUMENT;
#ifdef FAKE_NO_POWER
    return NVML_ERROR_NOT_SUPPORTED;
#else
    *power = 123456;
    return NVML_SUCCESS;
#endif
}
