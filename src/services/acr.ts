/** Authentication levels (DESIGN §3). */
export const ACR_SCA = 'urn:openbanking:psd2:sca';
export const ACR_CA = 'urn:openbanking:psd2:ca';
export const ACR_VALUES = [ACR_SCA, ACR_CA] as const;
